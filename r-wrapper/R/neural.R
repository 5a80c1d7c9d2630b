# What the neural multi-task fits (dual encoder, two-pathway block-wise model) share: fitted
# values and residuals on the training rows, task checks, new data, and their S3 methods.

# A neural fit: `fields` plus the training rows' response, fitted values and residuals.
new_neural_fit <- function(fields, data, y, fitted, class) {
  labels <- task_text(data[[fields$task]])
  fields$fitted.values <- fitted
  fields$residuals <- y - fitted
  fields$response <- y
  fields$task_labels <- labels
  fields$nobs <- length(y)
  fields$serialized <- py_serialize(fields$py)
  structure(fields, class = c(class, "hetmtl_neural"))
}

# Task labels as R text: numbers written in full ("100000", not "1e+05"), so that the labels of
# the rows and those that come back from Python (as numbers) read the same.
task_text <- function(labels) {
  if (is.numeric(labels)) {
    return(trimws(formatC(as.double(labels), format = "fg", digits = 15)))
  }
  as.character(labels)
}

# Task labels as Python receives them. Numbers stay numbers, so that Python orders the tasks 1, 2,
# ..., 10 as it does for the same column given in Python (as strings they would sort "1", "10",
# "2"); other labels go as strings. `numeric`: whether the fit's labels were numbers; new rows'
# labels are then read as numbers too ("3" is task 3), and one that is no number goes as a string
# (Python names it among the unknown tasks).
py_task_labels <- function(labels, numeric) {
  if (!numeric) {
    return(reticulate::np_array(task_text(labels)))
  }
  values <- if (is.numeric(labels)) as.double(labels) else
    suppressWarnings(as.double(as.character(labels)))
  if (anyNA(values)) {
    mixed <- as.list(values)
    mixed[is.na(values)] <- as.list(as.character(labels)[is.na(values)])
    return(py_builtin_module("numpy")$array(reticulate::r_to_py(mixed), dtype = "object"))
  }
  whole <- all(values == round(values)) && all(abs(values) < 2^53)
  reticulate::np_array(values, dtype = if (whole) "int64" else "float64")
}

# One column name from a formula part (a bare name).
one_column <- function(expr, where, what) {
  if (!is.name(expr)) {
    arg_error("formula", where, " must be ", what, ", got '", deparse1(expr), "'")
  }
  as.character(expr)
}

# A task column with one level: nothing to share between tasks.
warn_single_task <- function(labels) {
  levels <- unique(as.character(labels))
  if (length(levels) == 1L) {
    warning("task: every row belongs to task '", levels, "'; with a single task there is nothing ",
            "to share, and the fit is an ordinary single-task network", call. = FALSE)
  }
}

# New rows for predict(): a data frame with the task and the covariate columns of the fit, the
# covariates expanded as at the fit (formula terms and factor levels of the fit).
prepare_newdata <- function(object, newdata, cols, task) {
  if (!is.data.frame(newdata)) {
    arg_error("newdata", "must be a data frame, got ", class(newdata)[1])
  }
  if (!(task %in% names(newdata))) {
    arg_error("newdata", "lacks column(s) ", fmt_values(task))
  }
  if (!is.null(object$design)) {
    x_mat <- new_design_matrix(object$design, newdata)
    newdata <- data.frame(newdata[task], x_mat, check.names = FALSE)
  } else if (length(object$factor_levels)) {
    raw <- object$x_given
    missing_cols <- setdiff(raw, names(newdata))
    if (length(missing_cols)) {
      arg_error("newdata", "lacks column(s) ", fmt_values(missing_cols))
    }
    newdata <- expand_factors(newdata, raw, "newdata", object$factor_levels)$data
  }
  missing_cols <- setdiff(c(cols, task), names(newdata))
  if (length(missing_cols)) {
    arg_error("newdata", "lacks column(s) ", fmt_values(missing_cols))
  }
  newdata
}

# Mean squared residual of each task on its training rows, in the order of the fit's tasks.
per_task_mse <- function(object) {
  mse <- tapply(object$residuals^2, object$task_labels, mean)
  unname(mse[object$tasks])
}

fitted.hetmtl_neural <- function(object, ...) {
  object$fitted.values
}

residuals.hetmtl_neural <- function(object, ...) {
  object$residuals
}

nobs.hetmtl_neural <- function(object, ...) {
  object$nobs
}

coef.hetmtl_neural <- function(object, ...) {
  stop("coef: a ", if (inherits(object, "hetmtl_dual_encoder")) "dual-encoder" else "two-pathway",
       " fit is a neural network and has no coefficients to report; use predict(), fitted() or ",
       "summary()", call. = FALSE)
}
