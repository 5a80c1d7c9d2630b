# Late fusion of site summaries at the center.

LATE_FUSION_EXTRA <- c("cv_rule", "C", "n_lambda", "lambda_ratio", "tol", "max_iter", "n_threads",
                       "tau2_method", "slab_scale")
LATE_FUSION_INTEGER <- c("n_lambda", "max_iter", "n_threads")

# Late fusion of per-site summaries (documented in man/).
late_fusion <- function(summaries, lam = NULL, weight = "precision", penalty = "l2",
                        inference = "bootstrap", n_boot = 1000, level = 0.95, seed = NULL,
                        method = NULL, ...) {
  call <- match.call()
  items <- collect_summaries(summaries)
  if (is.character(lam)) {
    check_choice(lam, "lam", "cv")
  } else if (!is.null(lam)) {
    lam <- check_number(lam, "lam", lower = 0)
  }
  if (!is.null(method)) {
    check_choice(method, "method", py_choices("late_fusion", "METHODS"))
  }
  check_choice(weight, "weight", py_choices("summary", "WEIGHTS"))
  check_choice(penalty, "penalty", py_choices("fused", "PENALTIES"))
  check_choice(inference, "inference", py_choices("inference", "INFERENCE"))
  n_boot <- check_count(n_boot, "n_boot", 2L)
  level <- check_level(level)
  seed <- check_seed(seed)
  extra <- list(...)
  if (length(extra)) {
    nms <- names(extra)
    if (is.null(nms) || any(!nzchar(nms))) {
      arg_error("...", "further options must be named")
    }
    unknown <- setdiff(nms, LATE_FUSION_EXTRA)
    if (length(unknown)) {
      arg_error("...", "unknown option(s) ", fmt_values(unknown), "; late_fusion() also takes ",
                fmt_values(LATE_FUSION_EXTRA))
    }
    for (nm in intersect(nms, LATE_FUSION_INTEGER)) {
      extra[[nm]] <- check_count(extra[[nm]], nm, 1L)
    }
    if (!is.null(extra$cv_rule)) check_choice(extra$cv_rule, "cv_rule", py_choices("late_fusion", "CV_RULES"))
    if (!is.null(extra$C)) extra$C <- check_number(extra$C, "C", lower = 0)
    if (!is.null(extra$lambda_ratio)) extra$lambda_ratio <- check_number(extra$lambda_ratio, "lambda_ratio", 0, TRUE)
    if (!is.null(extra$tol)) extra$tol <- check_number(extra$tol, "tol", 0, TRUE)
    if (!is.null(extra$tau2_method)) check_choice(extra$tau2_method, "tau2_method", py_choices("blup", "TAU2_METHODS"))
    if (!is.null(extra$slab_scale)) extra$slab_scale <- check_number(extra$slab_scale, "slab_scale", 1, TRUE)
  }

  mod <- py_module("late_fusion")
  args <- c(list(lam = lam, weight = weight, penalty = penalty, inference = inference,
                 n_boot = n_boot, level = level, random_state = seed, method = method), extra)
  py_objects <- unname(lapply(items, site_summary_py))
  py_items <- if (is.null(names(items))) {
    reticulate::r_to_py(py_objects)
  } else {
    reticulate::py_dict(names(items), py_objects, convert = FALSE)
  }
  fit <- py_call(do.call(mod$LateFusion, args)$fit(py_items))
  new_late_fusion(fit, call, level)
}

# A list of hetmtl_site_summary objects, named when the caller named the sites.
collect_summaries <- function(summaries) {
  if (inherits(summaries, c("hetmtl_site_summary", "hetmtl_site_dml"))) {
    summaries <- list(summaries)
  }
  if (is.character(summaries)) {
    summaries <- as.list(summaries)
  }
  if (!is.list(summaries) || length(summaries) == 0L) {
    arg_error("summaries", "expected a non-empty list of site summaries or JSON paths")
  }
  nms <- names(summaries)
  if (!is.null(nms)) {
    if (any(is.na(nms) | !nzchar(nms))) {
      arg_error("summaries", "name every element (the names are the site names) or none")
    }
    if (anyDuplicated(nms)) {
      arg_error("summaries", "site names must be unique, repeated: ", fmt_values(unique(nms[duplicated(nms)])))
    }
  }
  items <- lapply(seq_along(summaries), function(i) {
    s <- summaries[[i]]
    if (inherits(s, "hetmtl_site_summary")) {
      s
    } else if (inherits(s, "hetmtl_site_dml")) {
      site_summary(s)
    } else if (is.character(s) && length(s) == 1L) {
      if (!file.exists(s)) {
        arg_error("summaries", "file '", s, "' does not exist")
      }
      read_site_summary(s)
    } else {
      arg_error("summaries", "element ", i, " is a ", class(s)[1], ", not a site summary (make ",
                "one with site_summary(), site_summary_from_estimate() or read_site_summary())")
    }
  })
  if (is.null(nms)) {
    sites <- vapply(items, function(s) s$site, character(1))
    if (anyDuplicated(sites)) {
      arg_error("summaries", "site names must be unique, repeated: ",
                fmt_values(unique(sites[duplicated(sites)])),
                "; name the list elements to give the sites names")
    }
  }
  names(items) <- nms
  items
}

new_late_fusion <- function(fit, call, level) {
  sites <- py_chr(fit$site_names_)
  terms <- py_chr(fit$coef_names_)
  theta <- py_mat(fit$theta_)
  theta_hat <- py_mat(fit$theta_hat_)
  dimnames(theta) <- dimnames(theta_hat) <- list(sites, terms)
  center <- stats::setNames(py_num(fit$center_), terms)
  cs <- py_call(fit$center_summary())
  center_table <- data.frame(
    term = terms,
    estimate = center,
    std_err = as.numeric(py_column(cs, "std err")),
    ci_lower = as.numeric(py_column(cs, "ci lower")),
    ci_upper = as.numeric(py_column(cs, "ci upper")),
    row.names = terms, stringsAsFactors = FALSE
  )
  structure(list(
    py = fit,
    call = call,
    sites = sites,
    terms = terms,
    n = stats::setNames(py_num(fit$n_), sites),
    estimate = theta_hat,
    fused_estimate = theta,
    center = center,
    center_table = center_table,
    fused = stats::setNames(py_lgl(fit$fused_mask_), sites),
    lambda = py_num(fit$lambda_),
    lambda_max = py_num(fit$lambda_max_),
    lambda_rule = py_chr(fit$lambda_rule_),
    inference = py_chr(fit$inference),
    level = level
  ), class = "hetmtl_late_fusion")
}

# Names of the fused estimates: the site for one coefficient, "site:term" for several.
fused_names <- function(object) {
  if (length(object$terms) == 1L) {
    return(object$sites)
  }
  as.vector(t(outer(object$sites, object$terms, paste, sep = ":")))
}

print.hetmtl_late_fusion <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  cat(sprintf("Late fusion of %d sites: lambda = %s (%s; lambda_max = %s), %d fused with the center\n",
              length(x$sites), format(x$lambda, digits = digits), x$lambda_rule,
              format(x$lambda_max, digits = digits), sum(x$fused)))
  if (x$inference == "none") {
    cat("\nCenter (no inference):\n")
  } else {
    cat(sprintf("\nCenter (%s inference, %g%% intervals):\n", x$inference, 100 * x$level))
  }
  ct <- x$center_table[, -1, drop = FALSE]
  print(format(ct, digits = digits), quote = FALSE)
  cat("\nSites:\n")
  tab <- summary(x)
  keep <- c("site", if (length(x$terms) > 1L) "term", "n", "estimate", "std_err",
            "fused_estimate", "fused_std_err", "fused")
  print(format(tab[, keep], digits = digits), row.names = FALSE, quote = FALSE)
  invisible(x)
}

# Per-site table of a late fusion fit (documented in man/).
summary.hetmtl_late_fusion <- function(object, level = NULL, ...) {
  level <- check_level(level, allow_null = TRUE)
  check_python_object(object, "summary")
  tab <- py_call(object$py$summary(level = level)$reset_index())
  term <- if (length(object$terms) == 1L) rep(object$terms, length(object$sites)) else
    as.character(py_column(tab, "coef"))
  out <- data.frame(
    site = as.character(py_column(tab, "site")),
    term = term,
    n = as.numeric(py_column(tab, "n")),
    estimate = as.numeric(py_column(tab, "estimate")),
    std_err = as.numeric(py_column(tab, "std err")),
    ci_lower = as.numeric(py_column(tab, "ci lower")),
    ci_upper = as.numeric(py_column(tab, "ci upper")),
    fused_estimate = as.numeric(py_column(tab, "fused estimate")),
    fused_std_err = as.numeric(py_column(tab, "fused std err")),
    fused_ci_lower = as.numeric(py_column(tab, "fused ci lower")),
    fused_ci_upper = as.numeric(py_column(tab, "fused ci upper")),
    fused = as.logical(py_column(tab, "fused")),
    weight_pct = as.numeric(py_column(tab, "weight %")),
    stringsAsFactors = FALSE
  )
  out
}

# Estimates of a late fusion fit (documented in man/).
coef.hetmtl_late_fusion <- function(object, type = c("fused", "site", "center"), ...) {
  type <- check_choice(type[1], "type", c("fused", "site", "center"))
  if (type == "center") {
    return(object$center)
  }
  m <- if (type == "fused") object$fused_estimate else object$estimate
  stats::setNames(as.vector(t(m)), fused_names(object))
}

confint.hetmtl_late_fusion <- function(object, parm, level = NULL, ...) {
  level <- check_level(level, allow_null = TRUE)
  check_python_object(object, "confint")
  ci <- py_call(object$py$confint(level = level))
  out <- py_mat(ci$to_numpy())
  dimnames(out) <- list(fused_names(object), ci_colnames(if (is.null(level)) object$level else level))
  out[select_parm(parm, rownames(out)), , drop = FALSE]
}

# Meta-analysis view of a late fusion fit (documented in man/).
heterogeneity <- function(fit, ...) {
  UseMethod("heterogeneity")
}

heterogeneity.hetmtl_late_fusion <- function(fit, term = 1, level = NULL, ...) {
  j <- select_parm(term, fit$terms)
  if (length(j) != 1L) {
    arg_error("term", "give a single coefficient")
  }
  level <- check_level(level, allow_null = TRUE)
  check_python_object(fit, "heterogeneity")
  ma <- py_call(fit$py$heterogeneity(coef = as.integer(j - 1L), level = level))
  s <- py_call(ma$summary()$reset_index())
  h <- py_call(ma$heterogeneity_table()$reset_index())
  models <- as.character(py_column(s, "model"))
  data.frame(
    model = models,
    estimate = as.numeric(py_column(s, "estimate")),
    std_err = as.numeric(py_column(s, "std err")),
    z = as.numeric(py_column(s, "z")),
    p_value = as.numeric(py_column(s, "P>|z|")),
    ci_lower = as.numeric(py_column(s, "ci lower")),
    ci_upper = as.numeric(py_column(s, "ci upper")),
    tau2 = as.numeric(py_column(h, "tau2")),
    tau = as.numeric(py_column(h, "tau")),
    tau2_se = as.numeric(py_column(h, "tau2 se")),
    I2 = as.numeric(py_column(h, "I2 (%)")),
    H2 = as.numeric(py_column(h, "H2")),
    pi_lower = as.numeric(py_column(h, "pi lower")),
    pi_upper = as.numeric(py_column(h, "pi upper")),
    Q = as.numeric(py_column(h, "Q")),
    Q_df = as.numeric(py_column(h, "df")),
    Q_p_value = as.numeric(py_column(h, "P(Q)")),
    row.names = models, stringsAsFactors = FALSE
  )
}
