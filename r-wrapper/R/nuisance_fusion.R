# Nuisance fusion: a shared kernel grid, site grid summaries, fusion at the center, and site DML
# with the fused nuisances (site_dml(fused_nuisance = ...)).

# The shared grid (documented in man/).
nuisance_grid <- function(ranges, bandwidths, n_points = 20, kernel = "gaussian", fit = "constant",
                          threshold = 5, outside = "error") {
  ranges <- as.matrix(ranges)
  if (!is.numeric(ranges) || ncol(ranges) != 2L || nrow(ranges) < 1L || nrow(ranges) > 3L ||
        any(!is.finite(ranges))) {
    arg_error("ranges", "must be a finite numeric matrix with 2 columns (lower, upper) and 1 to 3 rows")
  }
  d <- nrow(ranges)
  bandwidths <- as.matrix(bandwidths)
  if (ncol(bandwidths) == 1L && d > 1L) {
    bandwidths <- matrix(rep(bandwidths, d), ncol = d)
  }
  if (!is.numeric(bandwidths) || ncol(bandwidths) != d || any(!is.finite(bandwidths)) ||
        any(bandwidths <= 0)) {
    arg_error("bandwidths", "must be positive numbers: a vector of candidates or a matrix with ", d,
              " column(s)")
  }
  n_points <- check_count(n_points, "n_points", 2L)
  kernel <- check_choice(kernel, "kernel", py_choices("kernel_grid_core", "KERNELS"))
  fit <- check_choice(fit, "fit", py_choices("kernel_grid_core", "FITS"))
  outside <- check_choice(outside, "outside", py_choices("kernel_grid", "OUTSIDE"))
  threshold <- check_number(threshold, "threshold", lower = 0)
  mod <- py_module("kernel_grid")
  grid <- py_call(mod$KernelGrid$from_ranges(
    reticulate::np_array(unname(ranges) * 1.0, dtype = "float64"), n_points, kernel = kernel,
    fit = fit, outside = outside))
  structure(list(py = grid, bandwidths = unname(bandwidths) * 1.0, threshold = threshold, dim = d,
                 n_points = as.integer(py_num(grid$n_points)), kernel = kernel, fit = fit),
            class = "hetmtl_nuisance_grid")
}

print.hetmtl_nuisance_grid <- function(x, ...) {
  cat(sprintf("Nuisance grid: %d dimension(s), %d points, kernel '%s', local %s fit, %d candidate bandwidth(s), threshold %g\n",
              x$dim, x$n_points, x$kernel, x$fit, nrow(x$bandwidths), x$threshold))
  invisible(x)
}

new_grid_summary <- function(py) {
  json <- py_chr(py_builtin_module("json")$dumps(py$to_dict()))
  structure(list(py = py, site = py_chr(py$site), json = json), class = "hetmtl_grid_summary")
}

grid_summary_py <- function(x) {
  if (!reticulate::py_is_null_xptr(x$py)) {
    return(x$py)
  }
  mod <- py_module("grid_summary")
  py_call(mod$GridSummary$from_dict(py_builtin_module("json")$loads(x$json)))
}

# A site's grid summary (documented in man/).
grid_summary <- function(data, y, d, x, grid, model = "plr", n_folds = 5, seed = NULL, site = "site",
                         path = NULL, policy = NULL) {
  if (!is.data.frame(data) || nrow(data) == 0L) {
    arg_error("data", "must be a data frame with rows")
  }
  if (!inherits(grid, "hetmtl_nuisance_grid")) {
    arg_error("grid", "expected a nuisance_grid(), got ", class(grid)[1])
  }
  model <- check_choice(model, "model", dml_models())
  y <- check_columns(y, data, "y", max_len = 1)
  d <- check_columns(d, data, "d", max_len = 1)
  x <- check_columns(x, data, "x")
  if (length(x) != grid$dim) {
    arg_error("x", "the grid has ", grid$dim, " dimension(s) but ", length(x), " column(s) were given")
  }
  n_folds <- check_count(n_folds, "n_folds", 2L)
  seed <- resolve_seed(seed)
  site <- check_string(site, "site")
  columns <- list()
  for (col in unique(c(y, d, x))) {
    columns[[col]] <- numeric_column(data, col, if (col == y) "y" else if (col == d) "d" else "x")
  }
  mod <- py_module("grid_summary")
  out <- py_call(mod$site_grid_summary(
    py_frame(columns), y = y, d = d, x = as.list(x), grid = grid$py,
    bandwidths = reticulate::np_array(grid$bandwidths, dtype = "float64"),
    threshold = grid$threshold, model = model, n_folds = n_folds, random_state = seed, site = site,
    policy = policy_py(policy)))
  gs <- new_grid_summary(reticulate::py_get_item(out, 0L))
  # The sample split the site's later site_dml(fused_nuisance = ...) must reuse.
  gs$split <- list(seed = seed, n_folds = n_folds, model = model)
  if (!is.null(path)) {
    path <- check_string(path, "path")
    py_call(gs$py$to_json(path.expand(path)))
  }
  gs
}

# Fusion at the center (documented in man/).
nuisance_fusion <- function(summaries, lam = "cv", penalty = "function", out_dir = NULL) {
  if (inherits(summaries, "hetmtl_grid_summary") || is.character(summaries)) {
    summaries <- as.list(summaries)
  }
  if (!is.list(summaries) || length(summaries) == 0L) {
    arg_error("summaries", "expected a list of grid_summary() results or JSON file paths")
  }
  mod <- py_module("grid_summary")
  splits <- list()
  items <- lapply(seq_along(summaries), function(i) {
    s <- summaries[[i]]
    if (inherits(s, "hetmtl_grid_summary")) {
      if (!is.null(s$split)) splits[[s$site]] <<- s$split
      return(grid_summary_py(s))
    }
    if (is.character(s) && length(s) == 1L) {
      if (!file.exists(s)) {
        arg_error("summaries", "file '", s, "' does not exist")
      }
      return(py_call(mod$GridSummary$from_json(path.expand(s))))
    }
    arg_error("summaries", "element ", i, " is neither a grid summary nor a file path")
  })
  if (!(identical(lam, "cv") || (is.numeric(lam) && length(lam) == 1L && is.finite(lam) && lam >= 0))) {
    arg_error("lam", "must be 'cv' or a non-negative number")
  }
  penalty <- check_choice(penalty, "penalty", py_choices("kernel_grid_core", "GRID_PENALTIES"))
  nf_mod <- py_module("nuisance_fusion")
  fit <- py_call(nf_mod$NuisanceFusion(lam = if (is.numeric(lam)) as.double(lam) else lam,
                                       penalty = penalty)$fit(items))
  sites <- py_chr(fit$sites_)
  roles <- py_chr(reticulate::import_builtins(convert = FALSE)$list(fit$values_$keys()))
  bandwidth <- lapply(stats::setNames(roles, roles),
                      function(r) py_num(reticulate::py_get_item(fit$bandwidth_, r)))
  lambda <- vapply(stats::setNames(roles, roles),
                   function(r) py_num(reticulate::py_get_item(fit$lam_, r)), numeric(1))
  out <- structure(list(py = fit, serialized = py_serialize(fit), sites = sites, bandwidth = bandwidth, lambda = lambda,
                        penalty = penalty, splits = splits), class = "hetmtl_nuisance_fusion")
  if (!is.null(out_dir)) {
    out_dir <- check_string(out_dir, "out_dir")
    dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
    for (s in sites) {
      fused_nuisance(out, s, path = file.path(out_dir, paste0(gsub("[^A-Za-z0-9_.-]", "_", s), ".fused.json")))
    }
  }
  out
}

print.hetmtl_nuisance_fusion <- function(x, ...) {
  cat(sprintf("Nuisance fusion of %s ('%s' penalty)\n", n_of(length(x$sites), "site"), x$penalty))
  for (r in names(x$lambda)) {
    cat(sprintf("  %s: bandwidth %s, lambda %.4g\n", r, paste(format(x$bandwidth[[r]], digits = 4),
                                                             collapse = ", "), x$lambda[[r]]))
  }
  invisible(x)
}

# What the center sends back to one site (documented in man/).
fused_nuisance <- function(fit, site, path = NULL) {
  if (!inherits(fit, "hetmtl_nuisance_fusion")) {
    arg_error("fit", "expected a nuisance_fusion() result, got ", class(fit)[1])
  }
  site <- check_string(site, "site")
  if (!(site %in% fit$sites)) {
    arg_error("site", "unknown site '", site, "'; known: ", fmt_values(fit$sites))
  }
  py <- py_call(py_fit(fit, "fused_nuisance")$result(site))
  if (!is.null(path)) {
    py_call(py$to_json(path.expand(check_string(path, "path"))))
  }
  structure(list(py = py, serialized = py_serialize(py), site = site, split = fit$splits[[site]]),
            class = "hetmtl_fused_nuisance")
}

print.hetmtl_fused_nuisance <- function(x, ...) {
  cat(sprintf("Fused nuisances for site '%s'%s\n", x$site,
              if (is.null(x$split)) "" else sprintf(" (sample split: seed %d, %d folds)",
                                                    x$split$seed, x$split$n_folds)))
  invisible(x)
}

# The seed of a site_dml() fit with fused nuisances: the fused functions were fitted without each
# fold of the split the site's grid summary used, so any other split breaks cross-fitting. With
# no seed given, that recorded seed is used; a different seed or fold count is an error.
fused_split_seed <- function(fused_nuisance, seed, n_folds) {
  split <- if (inherits(fused_nuisance, "hetmtl_fused_nuisance")) fused_nuisance$split else NULL
  if (is.null(split)) {
    if (is.null(seed)) {
      arg_error("seed", "give the seed the site's grid_summary() used: the fused nuisances fit ",
                "only that sample split (a file does not record it)")
    }
    return(check_seed(seed))
  }
  if (is.null(seed)) {
    seed <- split$seed
  }
  seed <- check_seed(seed)
  if (seed != split$seed) {
    arg_error("seed", seed, " differs from the seed of the site's grid summary (", split$seed,
              "); the fused nuisances fit only that sample split, so cross-fitting would break. ",
              "Leave seed unset to use it")
  }
  if (n_folds != split$n_folds) {
    arg_error("n_folds", n_folds, " differs from the grid summary's ", split$n_folds, " folds")
  }
  seed
}

# The Python FusedNuisance of a site_dml(fused_nuisance = ...) argument (object or file path).
fused_nuisance_py <- function(x) {
  if (inherits(x, "hetmtl_fused_nuisance")) {
    return(py_fit(x, "fused_nuisance"))
  }
  if (is.character(x) && length(x) == 1L) {
    if (!file.exists(x)) {
      arg_error("fused_nuisance", "file '", x, "' does not exist")
    }
    return(py_call(py_module("nuisance_fusion")$FusedNuisance$from_json(path.expand(x))))
  }
  arg_error("fused_nuisance", "expected a fused_nuisance() result or a file path, got ", class(x)[1])
}
