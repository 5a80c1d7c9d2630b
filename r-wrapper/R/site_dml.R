# Per-site double machine learning: site_dml() and its methods.

# The models and each model's learner roles, as the Python package defines them.
dml_models <- function() py_choices("dml_models", "MODELS")

model_roles <- function(model) {
  py_chr(py_module("dml_models")$get_model(model)$roles)
}

# Double machine learning at one site (documented in man/). A generic over its first argument
# (a data frame or a formula); the generic takes only `...` so that the formula method is chosen
# also when the data frame is passed by name (site_dml(y ~ d | x, data = df)).
site_dml <- function(...) {
  UseMethod("site_dml")
}

site_dml.formula <- function(formula, data, ..., na.action = getOption("na.action")) {
  parts <- split_formula(formula, "formula", "y ~ d | x1 + x2")
  if (!is.data.frame(data)) {
    arg_error("data", "must be a data frame, got ", class(data)[1])
  }
  extra <- list(...)
  cluster <- extra$cluster
  basis <- extra$basis
  frame <- formula_frame(data, c(all.vars(parts$lhs), all.vars(parts$left), cluster,
                                 if (is.character(basis)) basis,
                                 formula_vars(parts$right, data)), na.action)
  y <- all.vars(parts$lhs)
  if (length(y) != 1L || !identical(deparse1(parts$lhs), y)) {
    arg_error("formula", "the left-hand side must be one outcome column, got '", deparse1(parts$lhs), "'")
  }
  d_mat <- design_matrix(parts$left, frame$data, "formula (treatment part)", parts$env)
  x_mat <- design_matrix(dot_to_rest(parts$right, frame$data, c(y, all.vars(parts$left), cluster)),
                         frame$data, "formula (covariate part)", parts$env)
  if (ncol(x_mat) == 0L) {
    arg_error("formula", "no covariates after '|' (write y ~ d | x1 + x2)")
  }
  built <- data.frame(frame$data[y], d_mat, x_mat, check.names = FALSE)
  for (col in c(cluster, if (is.character(basis)) basis)) {
    built[[col]] <- frame$data[[col]]
  }
  fit <- site_dml.default(built, y = y, d = colnames(d_mat), x = colnames(x_mat), ...)
  fit$call <- match.call()
  fit$formula <- formula
  fit$na.action <- frame$na.action
  fit
}

site_dml.default <- function(data, y, d, x, cluster = NULL, model = "plr", learner = "rf",
                             n_folds = 5, n_rep = 1, site = "site", seed = NULL,
                             learner_args = list(), basis = NULL, clip = 0.01, folds = NULL,
                             fused_nuisance = NULL, policy = NULL, na.action = NULL, ...) {
  call <- match.call()
  check_no_dots(list(...), "site_dml")
  if (!is.data.frame(data)) {
    arg_error("data", "must be a data frame, got ", class(data)[1])
  }
  if (nrow(data) == 0L) {
    arg_error("data", "has no rows")
  }
  if (anyDuplicated(names(data))) {
    arg_error("data", "has repeated column names ", fmt_values(unique(names(data)[duplicated(names(data))])))
  }
  if (inherits(y, "formula")) {
    arg_error("y", "a formula goes first: site_dml(y ~ d | x1 + x2, data)")
  }
  model <- check_choice(model, "model", dml_models())
  y <- check_columns(y, data, "y", max_len = 1)
  d <- check_columns(d, data, "d")
  if (!is.null(cluster)) {
    cluster <- check_columns(cluster, data, "cluster", max_len = 1)
  }
  taken <- c(y, d, cluster)
  if (y %in% d) {
    arg_error("d", "must not contain the outcome column '", y, "'")
  }
  if (!is.null(cluster) && cluster %in% c(y, d)) {
    arg_error("cluster", "must differ from the outcome and treatment columns")
  }
  if (!is.null(basis)) {
    if (model != "cate_linear") {
      arg_error("basis", "only used by model 'cate_linear', not by '", model, "'")
    }
    basis <- check_columns(basis, data, "basis")
  }
  x <- check_covariates(x, data, taken, "y, d and cluster")
  if (!is.null(na.action)) {
    kept <- apply_na_action(data, unique(c(y, d, x, basis, cluster)), na.action)
    data <- kept$data
  }
  expanded <- expand_factors(data, x, "x")
  data <- expanded$data
  x <- expanded$x
  n_folds <- check_count(n_folds, "n_folds", 2L)
  n_rep <- check_count(n_rep, "n_rep", 1L)
  site <- check_string(site, "site")
  learner_args <- check_learner_args(learner_args)
  clip <- check_number(clip, "clip", lower = 0)
  fused <- NULL
  if (!is.null(fused_nuisance)) {
    if (!is.null(folds) || n_rep != 1L) {
      arg_error("fused_nuisance", "uses the sample split drawn from seed and n_folds; leave folds ",
                "unset and n_rep at 1")
    }
    fused <- fused_nuisance_py(fused_nuisance)
    seed <- fused_split_seed(fused_nuisance, seed, n_folds)
  }
  seed <- resolve_seed(seed)

  # Only the columns the fit uses cross to Python, each numeric one as double.
  columns <- list()
  for (col in unique(c(y, d, x, basis))) {
    role <- if (col == y) "y" else if (col %in% d) "d" else if (col %in% x) "x" else "basis"
    columns[[col]] <- numeric_column(data, col, role)
  }
  if (!is.null(cluster)) {
    labels <- data[[cluster]]
    if (anyNA(labels)) {
      arg_error("cluster", "column '", cluster, "' has ", sum(is.na(labels)), " missing value(s)")
    }
    columns[[cluster]] <- as.character(labels)
  }
  py_folds <- convert_folds(folds, nrow(data))

  mod <- py_module("site_dml")
  learners <- learners_by_role(learner, model)
  frame <- py_frame(columns)
  fit <- py_call({
    # Learner names are resolved (and seeded from `seed`) by SiteDML itself, as in Python.
    est <- mod$SiteDML(model = model, ml_l = learners$ml_l, ml_m = learners$ml_m,
                       ml_g = learners$ml_g, n_folds = n_folds, n_rep = n_rep,
                       basis = if (is.null(basis)) NULL else as.list(basis), clip = clip,
                       site = site, random_state = seed,
                       learner_args = if (length(learner_args)) learner_args else NULL)
    predictions <- NULL
    if (!is.null(fused)) {
      # The same split the grid summary used (same seed and n_folds), and out-of-fold predictions
      # from the functions fused without each fold.
      split <- reticulate::py_get_item(est$split(frame, y = y, d = as.list(d), x = as.list(x),
                                                 cluster = cluster), 0L)
      py_folds <- list(split)
      predictions <- fused$predictions(reticulate::py_get_item(frame, as.list(x))$to_numpy(), split)
    }
    est$fit(frame, y = y, d = as.list(d), x = as.list(x),
            cluster = cluster, folds = py_folds, predictions = predictions)
    if (!is.null(policy)) {
      # The site's own floors on top of the package's: fold summaries it does not release.
      reticulate::py_set_attr(est, "summary_", est$summary_$released(policy_py(policy)))
    }
    est
  })
  out <- new_site_dml(fit, call, if (is.null(fused)) learner_label(learner) else "fused nuisances")
  out$seed <- seed
  out$x <- x
  if (!is.null(na.action)) out$na.action <- kept$na.action
  out
}

# Named learner parameters; whole numbers become integers (scikit-learn refuses 2.0 where it
# wants a count, and accepts 2 wherever it wants a real number), so n_jobs = 2 works.
check_learner_args <- function(learner_args) {
  if (!is.list(learner_args) || (length(learner_args) &&
                                   (is.null(names(learner_args)) || any(!nzchar(names(learner_args)))))) {
    arg_error("learner_args", "must be a named list of learner parameters")
  }
  stats::setNames(lapply(names(learner_args), function(nm) as_python_scalar(learner_args[[nm]], nm)),
                  names(learner_args))
}

# scikit-learn parameters where a float is a fraction and an integer a count: 1 stays the
# fraction 1.0 (all), as in Python; write 1L for a count of one.
FRACTION_OR_COUNT <- c("max_features", "max_samples", "min_samples_split", "min_samples_leaf")

as_python_scalar <- function(v, name = "") {
  if (is.double(v) && length(v) == 1L && is.finite(v) && v == round(v) &&
        abs(v) < .Machine$integer.max && !(v == 1 && name %in% FRACTION_OR_COUNT)) {
    return(as.integer(v))
  }
  v
}

# A pandas DataFrame from a named list of R vectors (doubles and character labels).
py_frame <- function(columns) {
  pd <- py_builtin_module("pandas")
  values <- lapply(columns, function(v) {
    if (is.double(v)) reticulate::np_array(v, dtype = "float64") else reticulate::r_to_py(as.list(v))
  })
  pd$DataFrame(reticulate::py_dict(names(columns), unname(values), convert = FALSE))
}

# How the learners are described when printing: names, or the Python class of an object.
learner_label <- function(learner) {
  one <- function(l) {
    if (is.character(l)) l else py_chr(reticulate::py_get_attr(l, "__class__")$`__name__`)
  }
  if (is.list(learner) && !inherits(learner, "python.builtin.object")) {
    return(paste(names(learner), vapply(learner, one, character(1)), sep = " = ", collapse = ", "))
  }
  one(learner)
}

# The learner of each role of the model: a name of the Python registry or a Python estimator.
learners_by_role <- function(learner, model) {
  roles <- model_roles(model)
  if (is.list(learner) && !inherits(learner, "python.builtin.object")) {
    nms <- names(learner)
    if (is.null(nms) || any(!nzchar(nms))) {
      arg_error("learner", "a list of learners must be named by role (", fmt_values(roles), ")")
    }
    extra <- setdiff(nms, roles)
    if (length(extra)) {
      arg_error("learner", "role(s) ", fmt_values(extra), " not used by model '", model,
                "' (it uses ", fmt_values(roles), ")")
    }
    missing <- setdiff(roles, nms)
    if (length(missing)) {
      arg_error("learner", "no learner given for role(s) ", fmt_values(missing))
    }
    per_role <- learner[roles]
  } else {
    per_role <- stats::setNames(rep(list(learner), length(roles)), roles)
  }
  out <- list(ml_l = NULL, ml_m = NULL, ml_g = NULL)
  for (role in roles) {
    l <- per_role[[role]]
    if (is.character(l) && length(l) == 1L) {
      check_choice(l, "learner", learner_names())
    } else if (!inherits(l, "python.builtin.object")) {
      arg_error("learner", "expected one of ", fmt_values(learner_names()),
                ", a Python scikit-learn estimator, or a named list of those")
    }
    out[[role]] <- l
  }
  out
}

convert_folds <- function(folds, n) {
  if (is.null(folds)) {
    return(NULL)
  }
  np <- py_builtin_module("numpy")
  to_py <- function(rows, where) {
    if (!is.numeric(rows) || length(rows) == 0L || anyNA(rows) || any(rows != round(rows))) {
      arg_error("folds", where, " must be a non-empty vector of row numbers")
    }
    if (min(rows) < 1 || max(rows) > n) {
      arg_error("folds", where, " has row numbers outside 1..", n)
    }
    # Python counts rows from 0.
    reticulate::np_array(as.integer(rows) - 1L, dtype = "int64")
  }
  if (is.atomic(folds)) {
    if (length(folds) != n || anyNA(folds)) {
      arg_error("folds", "a vector of fold labels needs one label per row (", n, "), got ", length(folds))
    }
    groups <- split(seq_len(n), factor(folds))
    return(reticulate::r_to_py(unname(lapply(seq_along(groups), function(k) {
      to_py(groups[[k]], paste0("fold ", k))
    }))))
  }
  if (!is.list(folds) || length(folds) == 0L) {
    arg_error("folds", "expected a vector of fold labels, a list of row-number vectors, or a list of such lists")
  }
  nested <- is.list(folds[[1]])
  reps <- if (nested) folds else list(folds)
  sizes <- vapply(reps, function(r) if (is.list(r)) length(r) else NA_integer_, integer(1))
  if (!anyNA(sizes) && any(sizes != sizes[1])) {
    r <- which(sizes != sizes[1])[1]
    arg_error("folds", "repetition ", r, " has ", sizes[r], " folds, repetition 1 has ", sizes[1])
  }
  py_reps <- lapply(seq_along(reps), function(r) {
    rep_folds <- reps[[r]]
    if (!is.list(rep_folds) || length(rep_folds) < 2L) {
      arg_error("folds", "repetition ", r, " must be a list of at least 2 folds")
    }
    lapply(seq_along(rep_folds), function(k) {
      to_py(rep_folds[[k]], paste0("repetition ", r, ", fold ", k))
    })
  })
  reticulate::r_to_py(py_reps)
}

new_site_dml <- function(fit, call, learner) {
  terms <- py_chr(fit$coef_names_)
  coef <- stats::setNames(py_num(fit$coef_), terms)
  se <- stats::setNames(py_num(fit$se_), terms)
  vc <- py_mat(fit$cov_)
  dimnames(vc) <- list(terms, terms)
  n_clusters <- reticulate::py_to_r(fit$n_clusters_)
  n_clusters <- if (is.null(n_clusters)) NA_integer_ else as.integer(n_clusters)
  structure(list(
    py = fit,
    serialized = py_serialize(fit),
    call = call,
    model = py_chr(fit$model),
    site = py_chr(fit$site),
    learner = learner,
    coefficients = coef,
    se = se,
    vcov = vc,
    nobs = as.integer(py_num(fit$n_obs_)),
    n_folds = as.integer(py_num(fit$n_folds_)),
    n_rep = as.integer(py_num(fit$n_rep_)),
    n_clusters = n_clusters,
    summary = new_site_summary(fit$summary_)
  ), class = "hetmtl_site_dml")
}

print.hetmtl_site_dml <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  cat(sprintf("Site DML at site '%s': model '%s', n = %d%s, %d folds x %d repetition(s), learner %s\n\n",
              x$site, x$model, x$nobs,
              if (is.na(x$n_clusters)) "" else sprintf(" in %d clusters", x$n_clusters),
              x$n_folds, x$n_rep, x$learner))
  z <- x$coefficients / x$se
  tab <- cbind(Estimate = x$coefficients, `Std. Error` = x$se, `z value` = z,
               `Pr(>|z|)` = 2 * stats::pnorm(-abs(z)))
  stats::printCoefmat(tab, digits = digits, has.Pvalue = TRUE)
  invisible(x)
}

# Result table of a site DML fit (documented in man/).
summary.hetmtl_site_dml <- function(object, level = 0.95, ...) {
  level <- check_level(level)
  object$py <- py_fit(object, "summary")
  tab <- py_call(object$py$summary(level = level))
  terms <- py_chr(tab$index$tolist())
  cols <- py_chr(tab$columns$tolist())
  out <- data.frame(
    term = terms,
    estimate = as.numeric(py_column(tab, "coef")),
    std_err = as.numeric(py_column(tab, "std err")),
    z = as.numeric(py_column(tab, "z")),
    p_value = as.numeric(py_column(tab, "P>|z|")),
    ci_lower = as.numeric(py_column(tab, cols[5])),
    ci_upper = as.numeric(py_column(tab, cols[6])),
    row.names = terms, stringsAsFactors = FALSE
  )
  out
}

coef.hetmtl_site_dml <- function(object, ...) {
  object$coefficients
}

vcov.hetmtl_site_dml <- function(object, ...) {
  object$vcov
}

nobs.hetmtl_site_dml <- function(object, ...) {
  object$nobs
}

confint.hetmtl_site_dml <- function(object, parm, level = 0.95, ...) {
  level <- check_level(level)
  object$py <- py_fit(object, "confint")
  ci <- py_call(object$py$confint(level = level))
  terms <- names(object$coefficients)
  out <- py_mat(ci$to_numpy())
  dimnames(out) <- list(terms, ci_colnames(level))
  out[select_parm(parm, terms), , drop = FALSE]
}

ci_colnames <- function(level) {
  a <- (1 - level) / 2
  paste(format(100 * c(a, 1 - a), trim = TRUE, scientific = FALSE, digits = 3), "%")
}

select_parm <- function(parm, names) {
  if (missing(parm) || is.null(parm)) {
    return(seq_along(names))
  }
  if (is.character(parm)) {
    unknown <- setdiff(parm, names)
    if (length(unknown)) {
      arg_error("parm", "unknown name(s) ", fmt_values(unknown), "; known: ", fmt_values(names))
    }
    return(match(parm, names))
  }
  if (is.numeric(parm) && !anyNA(parm) && all(parm >= 1 & parm <= length(names) & parm == round(parm))) {
    return(as.integer(parm))
  }
  arg_error("parm", "must be names or positions (1..", length(names), ")")
}

# A site's disclosure policy for Python: NULL, a JSON file or a named list of its settings.
policy_py <- function(policy) {
  if (is.null(policy)) {
    return(NULL)
  }
  if (is.character(policy) && length(policy) == 1L && !is.na(policy)) {
    return(path.expand(policy))
  }
  if (!is.list(policy) || is.null(names(policy)) || any(!nzchar(names(policy)))) {
    arg_error("policy", "must be a named list of disclosure settings or the path of a policy JSON file")
  }
  py_module("disclosure")$DisclosurePolicy$from_dict(reticulate::r_to_py(policy))
}

# A differentially private release of a fitted site's summary (documented in man/).
site_summary_private <- function(fit, epsilon, regressor_bound, outcome_bound, delta = 1e-6,
                                 seed = NULL, policy = NULL) {
  if (!inherits(fit, "hetmtl_site_dml")) {
    arg_error("fit", "expected a site_dml() fit, got ", class(fit)[1])
  }
  epsilon <- check_number(epsilon, "epsilon", 0, TRUE)
  regressor_bound <- check_number(regressor_bound, "regressor_bound", 0, TRUE)
  outcome_bound <- check_number(outcome_bound, "outcome_bound", 0, TRUE)
  delta <- check_number(delta, "delta", 0, TRUE)
  seed <- resolve_seed(seed)
  privacy <- py_module("summary_privacy")$SummaryPrivacy(
    epsilon = epsilon, regressor_bound = regressor_bound, outcome_bound = outcome_bound,
    delta = delta, random_state = seed)
  new_site_summary(py_call(fit$py$private_summary(privacy, policy = policy_py(policy))))
}
