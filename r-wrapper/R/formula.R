# Formula interfaces and data handling shared by the model functions: splitting `lhs ~ a | b`,
# missing values through na.action, and factor covariates expanded by model.matrix().

# The parts of `lhs ~ left | right`; `example` shows the expected form in the error.
split_formula <- function(formula, arg, example) {
  if (!inherits(formula, "formula") || length(formula) != 3L) {
    arg_error(arg, "must be a two-sided formula like ", example)
  }
  rhs <- formula[[3L]]
  if (!(is.call(rhs) && identical(rhs[[1L]], as.name("|")) && length(rhs) == 3L)) {
    arg_error(arg, "must have two parts on the right, separated by '|', like ", example)
  }
  list(lhs = formula[[2L]], left = rhs[[2L]], right = rhs[[3L]],
       env = environment(formula))
}

# The columns an expression reads; "." stands for every other column of data.
formula_vars <- function(expr, data) {
  vars <- all.vars(expr)
  if ("." %in% vars) names(data) else vars
}

# `expr` with "." replaced by the columns of data not used elsewhere (`taken`).
dot_to_rest <- function(expr, data, taken) {
  if (!("." %in% all.vars(expr))) {
    return(expr)
  }
  rest <- setdiff(names(data), taken)
  if (length(rest) == 0L) {
    arg_error("formula", "'.' stands for no column: data has none left")
  }
  rest_expr <- str2lang(paste(sprintf("`%s`", rest), collapse = " + "))
  do.call(substitute, list(expr, list(. = rest_expr)))
}

# The columns `vars` of data with rows that have missing values handled by na.action.
formula_frame <- function(data, vars, na.action) {
  vars <- unique(vars)
  missing <- setdiff(vars, names(data))
  if (length(missing)) {
    arg_error("formula", "column(s) ", fmt_values(missing), " not found in data")
  }
  apply_na_action(data, vars, na.action)
}

# na.action (a function or its name) applied to the columns `cols` of data; the rows it keeps,
# with every column of data, and what it removed (as stats::naresid() and naprint() expect).
apply_na_action <- function(data, cols, na.action) {
  fun <- if (is.character(na.action)) get(na.action, mode = "function") else na.action
  if (!is.function(fun)) {
    arg_error("na.action", "must be a function such as na.omit or na.fail, or its name")
  }
  sub <- data[cols]
  kept <- fun(sub)
  removed <- attr(kept, "na.action")
  rows <- if (is.null(removed)) seq_len(nrow(data)) else setdiff(seq_len(nrow(data)), removed)
  if (length(rows) == 0L) {
    arg_error("data", "no rows left after removing those with missing values")
  }
  list(data = data[rows, , drop = FALSE], na.action = removed)
}

# The model matrix of one formula part, without its intercept (factors get treatment contrasts:
# one 0/1 column per level but the first). Its terms (those of the model frame: with the class of
# every variable and what poly() or scale() learned from the data) and factor levels ride along
# as attributes, so that new rows can be expanded the same way (new_design_matrix()).
design_matrix <- function(expr, data, what, env = globalenv()) {
  # The formula's own environment (not this function's, which holds the data) finds functions
  # used in its terms.
  tt <- stats::terms(stats::as.formula(call("~", expr), env = env), data = data)
  attr(tt, "intercept") <- 1L
  mm <- tryCatch({
    mf <- stats::model.frame(tt, data = data, na.action = stats::na.pass)
    tt <- attr(mf, "terms")
    xlev <- stats::.getXlevels(tt, mf)
    stats::model.matrix(tt, mf)
  }, error = function(e) arg_error("formula", what, ": ", conditionMessage(e)))
  strip_intercept(mm, tt, xlev)
}

# New rows expanded with the terms and factor levels (`design`, a list) of a design_matrix().
new_design_matrix <- function(design, newdata) {
  newdata <- new_numeric_columns(design$terms, newdata)
  mm <- tryCatch({
    mf <- stats::model.frame(design$terms, data = newdata, xlev = design$xlevels,
                             na.action = stats::na.pass)
    stats::model.matrix(design$terms, mf)
  }, error = function(e) arg_error("newdata", conditionMessage(e)))
  strip_intercept(mm, design$terms, design$xlevels)
}

# The columns of new rows that the fit read as numbers, read by numeric_column(): a missing value
# or a factor or character column is an error naming the column (model.matrix() would expand a
# logical or character column into other columns, and the column would seem absent), and a
# logical column (transform(df, x = NA) makes one) becomes numbers.
new_numeric_columns <- function(tt, newdata) {
  classes <- attr(tt, "dataClasses")
  vars <- as.list(attr(tt, "variables"))[-1L]
  for (i in seq_along(classes)) {
    col <- if (is.name(vars[[i]])) as.character(vars[[i]]) else ""
    if (classes[[i]] == "numeric" && col %in% names(newdata)) {
      newdata[[col]] <- numeric_column(newdata, col, "newdata")
    }
  }
  newdata
}

strip_intercept <- function(mm, tt, xlev) {
  keep <- colnames(mm) != "(Intercept)"
  mm <- mm[, keep, drop = FALSE]
  attr(mm, "assign") <- NULL
  attr(mm, "contrasts") <- NULL
  attr(mm, "terms") <- tt
  attr(mm, "xlevels") <- xlev
  mm
}

# Covariate columns of the data-frame interfaces: required (no guess that would take an ID or
# site column as a covariate), existing, and distinct from the columns of other roles.
check_covariates <- function(x, data, taken, others) {
  if (missing(x) || is.null(x)) {
    arg_error("x", "name the covariate columns (or use the formula interface); they are not ",
              "guessed, since an ID or site column would be taken for a covariate")
  }
  x <- check_columns(x, data, "x")
  clash <- intersect(x, taken)
  if (length(clash)) {
    arg_error("x", "must not contain the ", others, " column(s) ", fmt_values(clash))
  }
  x
}

# Factor and character covariates become 0/1 columns (model.matrix(), treatment contrasts);
# numeric ones are kept. Returns the data with the new columns, the covariate names and the
# levels used, which `levels` gives back when new rows are expanded for prediction.
expand_factors <- function(data, x, arg, levels = NULL) {
  fitting <- is.null(levels)
  if (fitting) {
    levels <- list()
    for (col in x) {
      v <- data[[col]]
      if (is.factor(v) || is.character(v)) {
        if (anyNA(v)) {
          arg_error(arg, "column '", col, "' has ", sum(is.na(v)), " missing value(s)")
        }
        levels[[col]] <- base::levels(droplevels(as.factor(v)))
        if (length(levels[[col]]) < 2L) {
          arg_error(arg, "column '", col, "' has a single level, so it carries no information")
        }
      }
    }
  }
  if (length(levels) == 0L) {
    return(list(data = data, x = x, levels = levels))
  }
  out <- character(0)
  for (col in x) {
    lev <- levels[[col]]
    if (is.null(lev)) {
      out <- c(out, col)
      next
    }
    f <- factor(as.character(data[[col]]), levels = lev)
    unseen <- !is.na(data[[col]]) & is.na(f)
    if (any(unseen)) {
      arg_error(arg, "column '", col, "' has level(s) ", fmt_values(unique(data[[col]][unseen])),
                " not seen in the fit")
    }
    names_new <- paste0(col, lev[-1L])
    clash <- intersect(names_new, setdiff(names(data), x))
    if (fitting && length(clash)) {
      arg_error(arg, "expanding factor '", col, "' makes column(s) ", fmt_values(clash),
                " that data already has")
    }
    for (j in seq_along(names_new)) {
      data[[names_new[j]]] <- as.double(f == lev[j + 1L])
    }
    out <- c(out, names_new)
  }
  list(data = data, x = out, levels = levels)
}

# Arguments that no formal took: an error naming them rather than silence.
check_no_dots <- function(dots, fun) {
  if (length(dots)) {
    nms <- names(dots)
    shown <- if (is.null(nms)) "(unnamed)" else fmt_values(ifelse(nzchar(nms), nms, "(unnamed)"))
    arg_error("...", "unused argument(s) ", shown, " in ", fun, "()")
  }
}
