# Dual-encoder multi-task regression: dual_encoder_mtl() and its predict() method.

# The covariate matrix (doubles) and the task labels (strings) of `data`.
dual_inputs <- function(data, x, task) {
  labels <- task_labels(data, task)
  X <- column_matrix(data, x, numeric_column, "x")
  list(X = reticulate::np_array(X, dtype = "float64", order = "C"),
       task = reticulate::np_array(as.character(labels)))
}

# Dual-encoder multi-task regression (documented in man/).
dual_encoder_mtl <- function(data, y, task, x = NULL, latent_shared = 8, latent_specific = 2,
                             hidden = 32, lam_beta = "auto", lam_beta_grid = c(0, 0.3, 1),
                             lam_alpha = NULL, lam_specific = 1, gamma = 0.1, penalty = "l2",
                             center = "geomedian", head_ridge = 32, max_epochs = 200, patience = 20,
                             validation_fraction = 0.2, negative_transfer = "warn", seed = NULL) {
  call <- match.call()
  cols <- response_and_task(data, y, task)
  y <- cols$y
  task <- cols$task
  if (is.null(x)) {
    x <- setdiff(names(data), c(y, task))
    if (length(x) == 0L) {
      arg_error("x", "no covariate columns left in data besides y and task")
    }
  } else {
    x <- check_columns(x, data, "x")
    if (length(intersect(x, c(y, task)))) {
      arg_error("x", "must not contain the response or task column")
    }
  }
  if (!is.numeric(lam_beta_grid) || length(lam_beta_grid) == 0L || anyNA(lam_beta_grid) ||
        any(!is.finite(lam_beta_grid)) || any(lam_beta_grid < 0)) {
    arg_error("lam_beta_grid", "must be a vector of finite numbers >= 0, got ", deparse1(lam_beta_grid))
  }
  if (!is.numeric(hidden) || length(hidden) == 0L || anyNA(hidden) || any(hidden < 1) ||
        any(hidden != round(hidden))) {
    arg_error("hidden", "must be a vector of positive whole numbers, got ", deparse1(hidden))
  }
  params <- list(
    latent_shared = check_count(latent_shared, "latent_shared", 0L),
    latent_specific = check_count(latent_specific, "latent_specific", 0L),
    hidden = reticulate::tuple(as.list(as.integer(hidden))),
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
    random_state = check_seed(seed)
  )
  inputs <- dual_inputs(data, x, task)
  yv <- reticulate::np_array(numeric_column(data, y, "y"), dtype = "float64")
  model <- py_call({
    est <- do.call(py_torch_module("dual")$DualEncoderMTL, params)
    est$fit(inputs$X, yv, inputs$task)
  })
  frame <- model$task_report_$reset_index()
  cols <- c("task", "n_train", "n_val", "val_mse", "val_mse_single_task", "negative_transfer",
            "fallback", "fused", "distance_to_center", "specific_off", "orthogonality")
  report <- as.data.frame(stats::setNames(lapply(cols, function(col) py_column(frame, col)), cols),
                          stringsAsFactors = FALSE)
  report$task <- as.character(report$task)
  distances <- py_mat(model$head_distances_$to_numpy())
  dimnames(distances) <- list(report$task, report$task)
  structure(list(py = model, call = call, y = y, task = task, x = x,
                 tasks = report$task, task_report = report, head_distances = distances,
                 fused = stats::setNames(report$fused, report$task)),
            class = "hetmtl_dual_encoder")
}

# Predictions for new rows of fitted tasks (documented in man/).
predict.hetmtl_dual_encoder <- function(object, newdata, ...) {
  if (!is.data.frame(newdata)) {
    arg_error("newdata", "must be a data frame, got ", class(newdata)[1])
  }
  missing_cols <- setdiff(c(object$x, object$task), names(newdata))
  if (length(missing_cols)) {
    arg_error("newdata", "lacks column(s) ", fmt_values(missing_cols))
  }
  inputs <- dual_inputs(newdata, object$x, object$task)
  py_num(py_call(object$py$predict(inputs$X, inputs$task)))
}

print.hetmtl_dual_encoder <- function(x, ...) {
  cat("Dual-encoder multi-task regression:", length(x$tasks), "tasks,", length(x$x), "covariates\n")
  cat("Tasks fused with the center:", sum(x$fused), "of", length(x$fused), "\n")
  print(x$task_report[, c("task", "n_train", "n_val", "val_mse", "fused")], row.names = FALSE)
  invisible(x)
}
