# Block-wise missing multi-source learning: blockwise_mtl(), block_impute() and their methods.

# Option lists come from the Python package; "none" is R's spelling of imputer = None.
block_imputers <- function() c(py_chr(py_builtin_module("builtins")$list(
  reticulate::py_get_attr(py_torch_module("blockwise._data"), "IMPUTERS"))), "none")

# `sources`: a named list of column-name vectors, checked against `data`.
check_sources <- function(sources, anchor, data) {
  if (!is.list(sources) || length(sources) == 0L || is.null(names(sources)) ||
        any(!nzchar(names(sources)))) {
    arg_error("sources", "must be a named list of column-name vectors, one per source")
  }
  for (s in names(sources)) {
    check_columns(sources[[s]], data, paste0("sources$", s))
  }
  anchor <- check_string(anchor, "anchor")
  if (!anchor %in% names(sources)) {
    arg_error("anchor", "'", anchor, "' is not one of the sources ", fmt_values(names(sources)))
  }
  list(sources = sources, anchor = anchor)
}

# A source column as double; NA marks a missing block (whole blocks are checked in Python).
block_column <- function(data, col, arg) {
  v <- data[[col]]
  if (!(is.numeric(v) || is.logical(v))) {
    arg_error(arg, "column '", col, "' is of class ", class(v)[1], ", not numeric")
  }
  as.double(v)
}

# The source columns of `data` as a pandas DataFrame (NA -> NaN) and the task labels.
block_inputs <- function(data, sources, task) {
  labels <- task_labels(data, task)
  cols <- unlist(sources, use.names = FALSE)
  X <- column_matrix(data, cols, block_column, "sources")
  pandas <- py_builtin_module("pandas")
  frame <- pandas$DataFrame(reticulate::np_array(X, dtype = "float64", order = "C"),
                            columns = reticulate::r_to_py(as.list(cols)))
  list(X = frame, task = reticulate::np_array(task_text(labels)))
}

# The Python layout inferred from the NA pattern of the training data (the `data` argument: the
# Python X is the source columns read from it, and its errors name `data`).
block_layout <- function(inputs, sources, anchor) {
  py_call(py_torch_module("blockwise")$BlockLayout$from_data(
    inputs$X, inputs$task, reticulate::r_to_py(lapply(sources, as.list)), anchor), x_arg = "data")
}

layout_frame <- function(layout) {
  out <- r_frame(layout$summary()$reset_index())
  out$task <- as.character(out$task)
  out
}

# Two-pathway multi-task model for block-wise missing sources (documented in man/): a generic
# over a data frame or a formula `y ~ . | task` (the covariates are the sources' columns).
blockwise_mtl <- function(...) {
  UseMethod("blockwise_mtl")
}

blockwise_mtl.formula <- function(formula, data, sources, anchor, ...,
                                  na.action = getOption("na.action")) {
  parts <- split_formula(formula, "formula", "y ~ . | task")
  if (!identical(parts$left, as.name("."))) {
    arg_error("formula", "write y ~ . | task: the covariates are the columns of sources, and a ",
              "missing block is data, not a row to drop")
  }
  if (!is.data.frame(data)) {
    arg_error("data", "must be a data frame, got ", class(data)[1])
  }
  y <- one_column(parts$lhs, "the left-hand side", "an outcome column")
  task <- one_column(parts$right, "the part after '|'", "the task column")
  # na.action looks at the outcome and the task only: NA in the sources marks a missing block.
  frame <- formula_frame(data, c(y, task), na.action)
  fit <- blockwise_mtl.default(frame$data, y = y, task = task, sources = sources, anchor = anchor, ...)
  fit$call <- match.call()
  fit$na.action <- frame$na.action
  fit
}

blockwise_mtl.default <- function(data, y, task, sources, anchor, imputer = "hbi", hidden = 64,
                                  n_layers = 2, gamma = 0.1, delta = 0.1, kappa = 0.1,
                                  shared_head = "paper", architecture = "shared", grid = "auto",
                                  imputer_grid = NULL, batch_size = 32, max_epochs = 500, patience = 50,
                                  validation_fraction = 0.25, threads = 1, jobs = 1,
                                  device = "cpu", seed = NULL, ...) {
  call <- match.call()
  check_no_dots(list(...), "blockwise_mtl")
  cols <- response_and_task(data, y, task)
  y <- cols$y
  task <- cols$task
  src <- check_sources(sources, anchor, data)
  if (length(intersect(unlist(src$sources), c(y, task)))) {
    arg_error("sources", "must not contain the response or task column")
  }
  if (!is.null(grid) && !(is.character(grid) && length(grid) == 1L && grid %in% c("auto", "small", "paper")) &&
        !(is.list(grid) && !is.null(names(grid)))) {
    arg_error("grid", "must be NULL, \"auto\", \"small\", \"paper\" or a named list of value vectors")
  }
  imputer <- check_choice(imputer, "imputer", block_imputers())
  seed <- resolve_seed(seed)
  threads <- check_count(threads, "threads", 1L)
  params <- list(
    imputer = if (imputer == "none") NULL else imputer,
    hidden = check_count(hidden, "hidden", 1L),
    n_layers = check_count(n_layers, "n_layers", 1L),
    gamma = check_number(gamma, "gamma", lower = 0),
    delta = check_number(delta, "delta", lower = 0),
    kappa = check_number(kappa, "kappa", lower = 0),
    shared_head = check_choice(shared_head, "shared_head", py_choices("blockwise._two_pathway", "SHARED_HEADS")),
    architecture = check_choice(architecture, "architecture", c("shared", "paper")),
    grid = if (is.list(grid)) reticulate::r_to_py(lapply(grid, function(v) lapply(v, as_python_scalar))) else grid,
    batch_size = check_count(batch_size, "batch_size", 1L),
    max_epochs = check_count(max_epochs, "max_epochs", 1L),
    patience = check_count(patience, "patience", 1L),
    validation_fraction = check_level(validation_fraction, "validation_fraction"),
    n_threads = threads,
    n_jobs = check_count(jobs, "jobs", 1L),
    device = check_string(device, "device"),
    random_state = seed
  )
  warn_single_task(data[[task]])
  inputs <- block_inputs(data, src$sources, task)
  yv <- numeric_column(data, y, "y")
  layout <- block_layout(inputs, src$sources, src$anchor)
  if (!is.null(imputer_grid)) {
    if (imputer != "hbi") {
      arg_error("imputer_grid", "applies to imputer = \"hbi\" only, not \"", imputer, "\"")
    }
    params$imputer <- hbi_imputer(layout, imputer_grid, threads, params$device, seed)
  }
  model <- py_call({
    est <- do.call(py_torch_module("blockwise")$TwoPathwayMTL, c(list(layout), params))
    est$fit(inputs$X, reticulate::np_array(yv, dtype = "float64"), inputs$task)
  }, x_arg = "data")
  best <- reticulate::py_to_r(model$best_params_)
  fitted <- py_num(py_call(model$predict(inputs$X, inputs$task), x_arg = "data"))
  out <- new_neural_fit(
    list(py = model, call = call, y = y, task = task, sources = src$sources, anchor = src$anchor,
         layout = layout_frame(layout), tasks = layout_frame(layout)$task, best_params = best,
         cv_results = r_frame(model$cv_results_), imputer = imputer,
         settings = list(n_threads = threads, device = params$device, random_state = seed)),
    data, yv, fitted, "hetmtl_blockwise")
  out$seed <- seed
  out
}

# The HBI imputer with the candidate widths, depths and orthogonality weights of `grid`
# (a named list); seeded with the model's seed, on the model's device.
hbi_imputer <- function(layout, grid, threads, device, seed) {
  known <- c("width", "depth", "lam_orth", "max_epochs", "patience")
  if (!is.list(grid) || is.null(names(grid)) || any(!names(grid) %in% known)) {
    arg_error("imputer_grid", "must be a named list with entries among ", fmt_values(known))
  }
  args <- list()
  for (nm in intersect(c("width", "depth"), names(grid))) args[[nm]] <- count_tuple(grid[[nm]], paste0("imputer_grid$", nm))
  if (!is.null(grid$lam_orth)) {
    lo <- grid$lam_orth
    if (!is.numeric(lo) || length(lo) == 0L || anyNA(lo) || any(!is.finite(lo)) || any(lo < 0)) {
      arg_error("imputer_grid$lam_orth", "must be finite numbers >= 0, got ", deparse1(lo))
    }
    args$lam_orth <- reticulate::tuple(as.list(as.double(lo)))
  }
  for (nm in intersect(c("max_epochs", "patience"), names(grid))) {
    args[[nm]] <- check_count(grid[[nm]], paste0("imputer_grid$", nm), 1L)
  }
  py_call(do.call(py_torch_module("blockwise")$HBIImputer,
                  c(list(layout), args, list(n_threads = threads, device = device, random_state = seed))))
}

# Predictions for new rows of fitted tasks (documented in man/).
predict.hetmtl_blockwise <- function(object, newdata, ...) {
  if (missing(newdata) || is.null(newdata)) {
    return(stats::fitted(object))
  }
  newdata <- prepare_newdata(object, newdata, unlist(object$sources), object$task)
  object$py <- py_fit(object, "predict")
  inputs <- block_inputs(newdata, object$sources, object$task)
  py_num(py_call(object$py$predict(inputs$X, inputs$task), x_arg = "newdata"))
}

print.hetmtl_blockwise <- function(x, ...) {
  cat("Two-pathway multi-task model: ", n_of(nrow(x$layout), "task"), ", anchor source '", x$anchor, "'\n", sep = "")
  print(x$layout, row.names = FALSE)
  cat("Selected:", paste(names(x$best_params), unlist(x$best_params), sep = " = ", collapse = ", "), "\n")
  invisible(x)
}

summary.hetmtl_blockwise <- function(object, ...) {
  tasks <- object$layout
  tasks$train_mse <- per_task_mse(object)
  structure(list(tasks = tasks, best_params = object$best_params, cv_results = object$cv_results,
                 anchor = object$anchor, imputer = object$imputer, settings = object$settings,
                 nobs = stats::nobs(object), rmse = sqrt(mean(object$residuals^2))),
            class = "summary.hetmtl_blockwise")
}

print.summary.hetmtl_blockwise <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  s <- x$settings
  cat(sprintf("Two-pathway multi-task model: %s, %d rows, anchor source '%s', imputer '%s'; seed %d; %d thread(s) on %s\n",
              n_of(nrow(x$tasks), "task"), x$nobs, x$anchor, x$imputer, s$random_state, s$n_threads, s$device))
  cat("Selected:", paste(names(x$best_params), unlist(x$best_params), sep = " = ", collapse = ", "), "\n")
  cat(sprintf("Root mean squared residual on the training rows: %s\n\n", format(x$rmse, digits = digits)))
  print(format(x$tasks, digits = digits), row.names = FALSE)
  if (nrow(x$cv_results) > 1L) {
    cat("\nValidation over the grid:\n")
    print(format(x$cv_results, digits = digits), row.names = FALSE)
  }
  invisible(x)
}

# Imputation of whole missing sources from the anchor (documented in man/).
block_impute <- function(data, task, sources, anchor, method = "hbi", newdata = NULL, width = c(16, 32),
                         depth = c(1, 2), lam_orth = c(0, 1), max_epochs = 1000, patience = 30, threads = 1,
                         device = "cpu", seed = NULL) {
  if (!is.data.frame(data)) {
    arg_error("data", "must be a data frame, got ", class(data)[1])
  }
  task <- check_columns(task, data, "task", max_len = 1)
  src <- check_sources(sources, anchor, data)
  method <- check_choice(method, "method", setdiff(block_imputers(), "none"))
  seed <- resolve_seed(seed)
  if (!is.numeric(lam_orth) || length(lam_orth) == 0L || anyNA(lam_orth) || any(!is.finite(lam_orth)) ||
        any(lam_orth < 0)) {
    arg_error("lam_orth", "must be a vector of finite numbers >= 0, got ", deparse1(lam_orth))
  }
  hbi_args <- list(width = count_tuple(width, "width"), depth = count_tuple(depth, "depth"),
                   lam_orth = reticulate::tuple(as.list(as.double(lam_orth))),
                   max_epochs = check_count(max_epochs, "max_epochs", 1L),
                   patience = check_count(patience, "patience", 1L),
                   n_threads = check_count(threads, "threads", 1L), device = check_string(device, "device"),
                   random_state = seed)
  target <- if (is.null(newdata)) data else newdata
  if (!is.data.frame(target)) {
    arg_error("newdata", "must be a data frame, got ", class(target)[1])
  }
  inputs <- block_inputs(data, src$sources, task)
  layout <- block_layout(inputs, src$sources, src$anchor)
  new_inputs <- if (is.null(newdata)) inputs else block_inputs(newdata, src$sources, task)
  bw <- py_torch_module("blockwise")
  imp <- py_call(switch(method,
                        hbi = do.call(bw$HBIImputer, c(list(layout), hbi_args)),
                        mean = bw$MeanBlockImputer(layout),
                        iterative = bw$IterativeBlockImputer(layout, random_state = seed)))
  py_call(imp$fit(inputs$X, inputs$task), x_arg = "data")
  completed <- py_call(imp$transform(new_inputs$X, new_inputs$task),
                       x_arg = if (is.null(newdata)) "data" else "newdata")
  filled <- py_mat(completed)
  cols <- unlist(src$sources, use.names = FALSE)
  out <- target
  for (j in seq_along(cols)) {
    out[[cols[j]]] <- filled[, j]
  }
  report <- if (method == "hbi") r_frame(imp$report_$reset_index()) else NULL
  structure(out, imputation_report = report)
}
