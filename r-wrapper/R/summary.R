# Site summaries: what a site sends to the center (estimate, score moments, size, fold moments).

new_site_summary <- function(py) {
  # The JSON text rides along so that the summary survives saveRDS() and new sessions: the
  # Python object is rebuilt from it when needed (floats round-trip exactly through JSON).
  json <- py_chr(py_builtin_module("json")$dumps(py$to_dict()))
  terms <- py_chr(py$coef_names)
  est <- stats::setNames(py_num(py$theta), terms)
  cov <- py_mat(py$cov)
  dimnames(cov) <- list(terms, terms)
  structure(list(
    py = py,
    site = py_chr(py$site),
    model = py_chr(py$model),
    n = py_num(py$n),
    estimate = est,
    se = stats::setNames(sqrt(diag(cov)), terms),
    vcov = cov,
    n_folds = as.integer(reticulate::py_len(py$folds)),
    json = json
  ), class = "hetmtl_site_summary")
}

# The Python SiteSummary of `x`, rebuilt from its JSON when the object came back from saveRDS()
# or an earlier session.
site_summary_py <- function(x) {
  if (!reticulate::py_is_null_xptr(x$py)) {
    return(x$py)
  }
  mod <- py_module("summary")
  py_call(mod$SiteSummary$from_dict(py_builtin_module("json")$loads(x$json)))
}

# The site summary of a fit (documented in man/).
site_summary <- function(fit) {
  if (inherits(fit, "hetmtl_site_summary")) {
    return(fit)
  }
  if (!inherits(fit, "hetmtl_site_dml")) {
    arg_error("fit", "expected a site_dml() fit, got ", class(fit)[1])
  }
  fit$summary
}

# A site summary from a published estimate (documented in man/).
site_summary_from_estimate <- function(estimate, se = NULL, n = NULL, site = "site", cov = NULL) {
  if (!is.numeric(estimate) || length(estimate) == 0L || any(!is.finite(estimate))) {
    arg_error("estimate", "must be a non-empty numeric vector of finite values")
  }
  p <- length(estimate)
  if (is.null(se) == is.null(cov)) {
    arg_error("se", "give exactly one of se or cov")
  }
  if (!is.null(se)) {
    if (!is.numeric(se) || length(se) != p || any(!is.finite(se))) {
      arg_error("se", "must be ", p, " finite number(s), one per estimate")
    }
    if (any(se <= 0)) {
      arg_error("se", "standard errors must be positive")
    }
  }
  if (!is.null(cov)) {
    cov <- as.matrix(cov)
    if (!is.numeric(cov) || !all(dim(cov) == c(p, p)) || any(!is.finite(cov))) {
      arg_error("cov", "must be a finite ", p, " x ", p, " matrix")
    }
  }
  if (!is.null(n)) {
    n <- check_number(n, "n", lower = 0, lower_open = TRUE)
  }
  site <- check_string(site, "site")
  terms <- names(estimate)
  mod <- py_module("summary")
  py <- py_call(mod$SiteSummary$from_estimate(
    reticulate::np_array(as.double(estimate), dtype = "float64"),
    se = if (is.null(se)) NULL else reticulate::np_array(as.double(se), dtype = "float64"),
    cov = if (is.null(cov)) NULL else reticulate::np_array(unname(cov) * 1.0, dtype = "float64"),
    n = n, site = site,
    coef_names = if (is.null(terms)) list() else as.list(terms)
  ))
  new_site_summary(py)
}

# Read and write site summaries (versioned JSON) (documented in man/).
write_site_summary <- function(x, path) {
  if (!inherits(x, c("hetmtl_site_summary", "hetmtl_site_dml"))) {
    arg_error("x", "expected a site summary or a site_dml() fit, got ", class(x)[1])
  }
  x <- site_summary(x)
  path <- check_string(path, "path")
  dir <- dirname(path.expand(path))
  if (!dir.exists(dir)) {
    arg_error("path", "directory '", dir, "' does not exist")
  }
  py <- site_summary_py(x)
  py_call(py$to_json(path.expand(path)))
  invisible(path)
}

read_site_summary <- function(path) {
  path <- check_string(path, "path")
  if (!file.exists(path)) {
    arg_error("path", "file '", path, "' does not exist")
  }
  mod <- py_module("summary")
  new_site_summary(py_call(mod$SiteSummary$from_json(path.expand(path))))
}

print.hetmtl_site_summary <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  cat(sprintf("Site summary '%s' (model '%s', n = %s, %s)\n",
              x$site, x$model, format(x$n, digits = digits), n_of(x$n_folds, "fold summary", "fold summaries")))
  tab <- cbind(Estimate = x$estimate, `Std. Error` = x$se)
  print(signif(tab, digits))
  invisible(x)
}

coef.hetmtl_site_summary <- function(object, ...) {
  object$estimate
}

vcov.hetmtl_site_summary <- function(object, ...) {
  object$vcov
}
