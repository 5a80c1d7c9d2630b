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
  list(X = frame, task = reticulate::np_array(as.character(labels)))
}

# The Python layout inferred from the NA pattern of the training data.
block_layout <- function(inputs, sources, anchor) {
  py_call(py_torch_module("blockwise")$BlockLayout$from_data(
    inputs$X, inputs$task, reticulate::r_to_py(lapply(sources, as.list)), anchor))
}

layout_frame <- function(layout) {
  out <- r_frame(layout$summary()$reset_index())
  out$task <- as.character(out$task)
  out
}

# Two-pathway multi-task model for block-wise missing sources (documented in man/).
blockwise_mtl <- function(data, y, task, sources, anchor, imputer = "hbi", hidden = 64, n_layers = 2,
                          gamma = 0.1, delta = 0.1, kappa = 0.1, shared_head = "paper", grid = NULL,
                          batch_size = 16, max_epochs = 1000, patience = 100, validation_fraction = 0.25,
                          seed = NULL) {
  call <- match.call()
  cols <- response_and_task(data, y, task)
  y <- cols$y
  task <- cols$task
  src <- check_sources(sources, anchor, data)
  if (length(intersect(unlist(src$sources), c(y, task)))) {
    arg_error("sources", "must not contain the response or task column")
  }
  if (!is.null(grid) && !(is.character(grid) && length(grid) == 1L && grid %in% c("small", "paper")) &&
        !(is.list(grid) && !is.null(names(grid)))) {
    arg_error("grid", "must be NULL, \"small\", \"paper\" or a named list of value vectors")
  }
  imputer <- check_choice(imputer, "imputer", block_imputers())
  params <- list(
    imputer = if (imputer == "none") NULL else imputer,
    hidden = check_count(hidden, "hidden", 1L),
    n_layers = check_count(n_layers, "n_layers", 1L),
    gamma = check_number(gamma, "gamma", lower = 0),
    delta = check_number(delta, "delta", lower = 0),
    kappa = check_number(kappa, "kappa", lower = 0),
    shared_head = check_choice(shared_head, "shared_head", py_choices("blockwise._two_pathway", "SHARED_HEADS")),
    grid = if (is.list(grid)) reticulate::r_to_py(lapply(grid, as.list)) else grid,
    batch_size = check_count(batch_size, "batch_size", 1L),
    max_epochs = check_count(max_epochs, "max_epochs", 1L),
    patience = check_count(patience, "patience", 1L),
    validation_fraction = check_level(validation_fraction, "validation_fraction"),
    random_state = check_seed(seed)
  )
  inputs <- block_inputs(data, src$sources, task)
  yv <- reticulate::np_array(numeric_column(data, y, "y"), dtype = "float64")
  layout <- block_layout(inputs, src$sources, src$anchor)
  model <- py_call({
    est <- do.call(py_torch_module("blockwise")$TwoPathwayMTL, c(list(layout), params))
    est$fit(inputs$X, yv, inputs$task)
  })
  best <- reticulate::py_to_r(model$best_params_)
  structure(list(py = model, call = call, y = y, task = task, sources = src$sources,
                 anchor = src$anchor, layout = layout_frame(layout), best_params = best,
                 cv_results = r_frame(model$cv_results_)),
            class = "hetmtl_blockwise")
}

# Predictions for new rows of fitted tasks (documented in man/).
predict.hetmtl_blockwise <- function(object, newdata, ...) {
  if (!is.data.frame(newdata)) {
    arg_error("newdata", "must be a data frame, got ", class(newdata)[1])
  }
  missing_cols <- setdiff(c(unlist(object$sources), object$task), names(newdata))
  if (length(missing_cols)) {
    arg_error("newdata", "lacks column(s) ", fmt_values(missing_cols))
  }
  inputs <- block_inputs(newdata, object$sources, object$task)
  py_num(py_call(object$py$predict(inputs$X, inputs$task)))
}

print.hetmtl_blockwise <- function(x, ...) {
  cat("Two-pathway multi-task model: ", nrow(x$layout), " tasks, anchor source '", x$anchor, "'\n", sep = "")
  print(x$layout, row.names = FALSE)
  cat("Selected:", paste(names(x$best_params), unlist(x$best_params), sep = " = ", collapse = ", "), "\n")
  invisible(x)
}

# Imputation of whole missing sources from the anchor (documented in man/).
block_impute <- function(data, task, sources, anchor, method = "hbi", newdata = NULL, width = c(8, 16, 32),
                         depth = c(1, 2, 3), lam_orth = c(0, 1), max_epochs = 1000, patience = 30, seed = NULL) {
  if (!is.data.frame(data)) {
    arg_error("data", "must be a data frame, got ", class(data)[1])
  }
  task <- check_columns(task, data, "task", max_len = 1)
  src <- check_sources(sources, anchor, data)
  method <- check_choice(method, "method", setdiff(block_imputers(), "none"))
  seed <- check_seed(seed)
  counts <- function(x, arg) {
    if (!is.numeric(x) || length(x) == 0L || anyNA(x) || any(x < 1) || any(x != round(x))) {
      arg_error(arg, "must be a vector of positive whole numbers, got ", deparse1(x))
    }
    reticulate::tuple(as.list(as.integer(x)))
  }
  if (!is.numeric(lam_orth) || length(lam_orth) == 0L || anyNA(lam_orth) || any(!is.finite(lam_orth)) ||
        any(lam_orth < 0)) {
    arg_error("lam_orth", "must be a vector of finite numbers >= 0, got ", deparse1(lam_orth))
  }
  hbi_args <- list(width = counts(width, "width"), depth = counts(depth, "depth"),
                   lam_orth = reticulate::tuple(as.list(as.double(lam_orth))),
                   max_epochs = check_count(max_epochs, "max_epochs", 1L),
                   patience = check_count(patience, "patience", 1L), random_state = seed)
  target <- if (is.null(newdata)) data else newdata
  if (!is.data.frame(target)) {
    arg_error("newdata", "must be a data frame, got ", class(target)[1])
  }
  inputs <- block_inputs(data, src$sources, task)
  layout <- block_layout(inputs, src$sources, src$anchor)
  new_inputs <- if (is.null(newdata)) inputs else block_inputs(newdata, src$sources, task)
  bw <- py_torch_module("blockwise")
  completed <- py_call({
    imp <- switch(method,
                  hbi = do.call(bw$HBIImputer, c(list(layout), hbi_args)),
                  mean = bw$MeanBlockImputer(layout),
                  iterative = bw$IterativeBlockImputer(layout, random_state = seed))
    imp$fit(inputs$X, inputs$task)
    imp$transform(new_inputs$X, new_inputs$task)
  })
  filled <- py_mat(completed)
  cols <- unlist(src$sources, use.names = FALSE)
  out <- target
  for (j in seq_along(cols)) {
    out[[cols[j]]] <- filled[, j]
  }
  report <- if (method == "hbi") r_frame(imp$report_$reset_index()) else NULL
  structure(out, imputation_report = report)
}
