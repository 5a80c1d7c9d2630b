# Dual-encoder multi-task regression: dual_encoder_mtl() and its methods.

# The covariate matrix (doubles) and the task labels (see py_task_labels()) of `data`; `arg`: the
# argument the covariates came in by, named in errors (`newdata` for prediction).
dual_inputs <- function(data, x, task, numeric_task, arg = "x") {
  labels <- task_labels(data, task)
  X <- column_matrix(data, x, numeric_column, arg)
  list(X = reticulate::np_array(X, dtype = "float64", order = "C"),
       task = py_task_labels(labels, numeric_task))
}

# Dual-encoder multi-task regression (documented in man/): a generic over a data frame or a
# formula `y ~ x1 + x2 | task`.
dual_encoder_mtl <- function(...) {
  UseMethod("dual_encoder_mtl")
}

dual_encoder_mtl.formula <- function(formula, data, ..., na.action = getOption("na.action")) {
  parts <- split_formula(formula, "formula", "y ~ x1 + x2 | task")
  if (!is.data.frame(data)) {
    arg_error("data", "must be a data frame, got ", class(data)[1])
  }
  y <- one_column(parts$lhs, "the left-hand side", "an outcome column")
  task <- one_column(parts$right, "the part after '|'", "the task column")
  frame <- formula_frame(data, c(y, task, formula_vars(parts$left, data)), na.action)
  x_mat <- design_matrix(dot_to_rest(parts$left, frame$data, c(y, task)), frame$data, "covariates",
                         parts$env)
  if (ncol(x_mat) == 0L) {
    arg_error("formula", "no covariates before '|' (write y ~ x1 + x2 | task)")
  }
  built <- data.frame(frame$data[c(y, task)], x_mat, check.names = FALSE)
  fit <- dual_encoder_mtl.default(built, y = y, task = task, x = colnames(x_mat), ...)
  fit$call <- match.call()
  fit$formula <- formula
  fit$design <- list(terms = attr(x_mat, "terms"), xlevels = attr(x_mat, "xlevels"))
  fit$na.action <- frame$na.action
  fit
}

dual_encoder_mtl.default <- function(data, y, task, x, latent_shared = 12, latent_specific = 2,
                                     hidden = 32, lam_beta = "auto", lam_beta_grid = c(0, 0.3, 1),
                                     lam_alpha = NULL, lam_specific = 0, gamma = 0.1, penalty = "l2",
                                     center = "geomedian", head_ridge = 32, max_epochs = 200,
                                     patience = 20, validation_fraction = 0.2,
                                     negative_transfer = "warn", ensemble_size = 3, threads = 1,
                                     device = "cpu", seed = NULL, na.action = NULL, ...) {
  call <- match.call()
  check_no_dots(list(...), "dual_encoder_mtl")
  cols <- response_and_task(data, y, task)
  y <- cols$y
  task <- cols$task
  x <- check_covariates(x, data, c(y, task), "response or task")
  if (!is.null(na.action)) {
    kept <- apply_na_action(data, c(y, task, x), na.action)
    data <- kept$data
  }
  x_given <- x
  expanded <- expand_factors(data, x, "x")
  data <- expanded$data
  x <- expanded$x
  if (!is.numeric(lam_beta_grid) || length(lam_beta_grid) == 0L || anyNA(lam_beta_grid) ||
        any(!is.finite(lam_beta_grid)) || any(lam_beta_grid < 0)) {
    arg_error("lam_beta_grid", "must be a vector of finite numbers >= 0, got ", deparse1(lam_beta_grid))
  }
  params <- list(
    latent_shared = check_count(latent_shared, "latent_shared", 0L),
    latent_specific = check_count(latent_specific, "latent_specific", 0L),
    hidden = count_tuple(hidden, "hidden"),
    lam_beta = if (is.character(lam_beta)) check_choice(lam_beta, "lam_beta", "auto") else
      check_number(lam_beta, "lam_beta", lower = 0),
    lam_beta_grid = reticulate::tuple(as.list(as.double(lam_beta_grid))),
    lam_alpha = if (is.null(lam_alpha)) NULL else check_number(lam_alpha, "lam_alpha", lower = 0),
    lam_specific = check_number(lam_specific, "lam_specific", lower = 0),
    gamma = check_number(gamma, "gamma", lower = 0),
    penalty = check_choice(penalty, "penalty", py_choices("dual.alternating", "PENALTIES")),
    center = check_choice(center, "center", py_choices("dual.alternating", "CENTERS")),
    head_ridge = check_number(head_ridge, "head_ridge", lower = 0),
    max_epochs = check_count(max_epochs, "max_epochs", 1L),
    patience = check_count(patience, "patience", 1L),
    validation_fraction = check_level(validation_fraction, "validation_fraction"),
    negative_transfer = check_choice(negative_transfer, "negative_transfer", py_choices("dual.estimator", "NEGATIVE_TRANSFER")),
    ensemble_size = check_count(ensemble_size, "ensemble_size", 1L),
    n_threads = check_count(threads, "threads", 1L),
    device = check_string(device, "device"),
    random_state = resolve_seed(seed)
  )
  warn_single_task(data[[task]])
  numeric_task <- is.numeric(data[[task]])
  inputs <- dual_inputs(data, x, task, numeric_task)
  yv <- numeric_column(data, y, "y")
  model <- py_call({
    est <- do.call(py_torch_module("dual")$DualEncoderMTL, params)
    est$fit(inputs$X, reticulate::np_array(yv, dtype = "float64"), inputs$task)
  })
  report <- dual_task_report(model)
  distances <- py_mat(model$head_distances_$to_numpy())
  dimnames(distances) <- list(report$task, report$task)
  fitted <- py_num(py_call(model$predict(inputs$X, inputs$task)))
  out <- new_neural_fit(
    list(py = model, call = call, y = y, task = task, x = x, tasks = report$task,
         task_report = report, head_distances = distances,
         fused = stats::setNames(report$fused, report$task),
         settings = params[c("latent_shared", "latent_specific", "penalty", "center", "n_threads",
                             "device", "random_state")]),
    data, yv, fitted, "hetmtl_dual_encoder")
  out$seed <- params$random_state
  out$numeric_task <- numeric_task
  out$x_given <- x_given
  out$factor_levels <- expanded$levels
  if (!is.null(na.action)) out$na.action <- kept$na.action
  out
}

# Every column of the Python task_report_, one row per task in the fitted order; names with
# characters other than letters, digits, '_' and '.' get '_' in their place.
dual_task_report <- function(model) {
  report <- r_frame(model$task_report_$reset_index())
  names(report) <- gsub("[^A-Za-z0-9_.]+", "_", names(report))
  report$task <- task_text(report$task)
  report
}

# Positive whole numbers as a Python tuple of ints.
count_tuple <- function(x, arg) {
  if (!is.numeric(x) || length(x) == 0L || anyNA(x) || any(x < 1) || any(x != round(x))) {
    arg_error(arg, "must be a vector of positive whole numbers, got ", deparse1(x))
  }
  reticulate::tuple(as.list(as.integer(x)))
}

# Predictions for new rows of fitted tasks (documented in man/).
predict.hetmtl_dual_encoder <- function(object, newdata, ...) {
  if (missing(newdata) || is.null(newdata)) {
    return(stats::fitted(object))
  }
  newdata <- prepare_newdata(object, newdata, object$x, object$task)
  object$py <- py_fit(object, "predict")
  inputs <- dual_inputs(newdata, object$x, object$task, isTRUE(object$numeric_task), "newdata")
  py_num(py_call(object$py$predict(inputs$X, inputs$task), x_arg = "newdata"))
}

print.hetmtl_dual_encoder <- function(x, ...) {
  rep <- x$task_report
  cat("Dual-encoder multi-task regression: ", n_of(length(x$tasks), "task"), ", ",
      n_of(length(x$x), "covariate"), "\n", sep = "")
  cat("Tasks fused with the center:", sum(x$fused), "of", length(x$fused), "\n")
  dual_report_lines(rep)
  # In the fitted order: the order of the Python fit's tasks (numbers by value).
  print(rep[, intersect(c("task", "n_train", "n_val", "val_mse", "specific_used", "fused"),
                        names(rep))], row.names = FALSE)
  invisible(x)
}

# What the report says about the specific encoders and negative transfer (printed); `legend`:
# say what specific_gain is (where it is printed).
dual_report_lines <- function(rep, legend = FALSE) {
  if (!is.null(rep$specific_used)) {
    cat("Tasks using their specific encoder: ", sum(rep$specific_used), " of ", nrow(rep),
        if (legend) " (specific_gain: validation MSE without it minus with it)", "\n", sep = "")
  }
  flagged <- rep$task[rep$negative_transfer %in% TRUE]
  if (length(flagged)) {
    cat("Tasks flagged for negative transfer (worse than a single-task fit; see ",
        "transfer_p_adjusted): ", fmt_values(flagged), "\n", sep = "")
  }
}

summary.hetmtl_dual_encoder <- function(object, ...) {
  tab <- object$task_report
  tab$train_mse <- per_task_mse(object)
  structure(list(tasks = tab, settings = object$settings, nobs = stats::nobs(object),
                 n_covariates = length(object$x), rmse = sqrt(mean(object$residuals^2))),
            class = "summary.hetmtl_dual_encoder")
}

print.summary.hetmtl_dual_encoder <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  s <- x$settings
  cat(sprintf("Dual-encoder multi-task regression: %s, %d rows, %s\n",
              n_of(nrow(x$tasks), "task"), x$nobs, n_of(x$n_covariates, "covariate")))
  cat(sprintf("Latent sizes: %d shared, %d task-specific; head penalty '%s' towards the %s; seed %d; %d thread(s) on %s\n",
              s$latent_shared, s$latent_specific, s$penalty, s$center, s$random_state, s$n_threads,
              s$device))
  cat(sprintf("Root mean squared residual on the training rows: %s\n", format(x$rmse, digits = digits)))
  dual_report_lines(x$tasks, legend = TRUE)
  cat("\n")
  # Columns without a value for any task (the negative-transfer test when it is off) are left out.
  shown <- x$tasks[, !vapply(x$tasks, function(v) all(is.na(v)), logical(1)), drop = FALSE]
  print(format(shown, digits = digits), row.names = FALSE)
  invisible(x)
}
