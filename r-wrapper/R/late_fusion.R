# Late fusion of site summaries at the center.

LATE_FUSION_EXTRA <- c("cv_rule", "C", "n_lambda", "lambda_ratio", "tol", "max_iter", "n_threads",
                       "tau2_method", "slab_scale", "outlying_group", "spike", "model_average",
                       "interval_calibration", "site_intervals", "test")
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
  seed <- resolve_seed(seed)
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
    if (!is.null(extra$test)) check_choice(extra$test, "test", py_choices("blup", "BLUP_TESTS"))
    if (!is.null(extra$slab_scale)) extra$slab_scale <- check_number(extra$slab_scale, "slab_scale", 1, TRUE)
    if (!is.null(extra$outlying_group)) {
      check_choice(extra$outlying_group, "outlying_group", py_choices("outlying_groups", "OUTLYING_GROUPS"))
    }
    for (nm in intersect(nms, c("spike", "model_average"))) check_flag(extra[[nm]], nm)
    if (!is.null(extra$interval_calibration)) {
      check_choice(extra$interval_calibration, "interval_calibration",
                   py_choices("late_fusion", "INTERVAL_CALIBRATIONS"))
    }
    if (!is.null(extra$site_intervals)) {
      check_choice(extra$site_intervals, "site_intervals", py_choices("late_fusion", "SITE_INTERVALS"))
    }
  }

  # A single site: the Python package warns (SingleSiteWarning) and py_call() passes it on.
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
  out <- new_late_fusion(fit, call, level)
  out$seed <- seed
  out
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
    serialized = py_serialize(fit),
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
    method = py_chr(fit$method_),
    site_vcov = lapply(seq_along(sites) - 1L, function(k) {
      m <- py_mat(reticulate::py_get_item(fit$site_cov_, k))
      dimnames(m) <- list(terms, terms)
      m
    }),
    tau2 = method_tau2(fit),
    inference = py_chr(fit$inference),
    center_interval = center_interval(fit),
    level = level
  ), class = "hetmtl_late_fusion")
}

# Where the center's standard error and interval come from, for the heading of print(). Each
# summary method has its own inference (`inference` only switches it off), so this follows the
# inference the fit used, not the one asked for.
center_interval <- function(fit) {
  inf <- fit$inference_
  if (is_py_none(inf)) {
    return("no inference")
  }
  origin <- py_chr(inf$method)
  if (origin == "wald") {
    if (reticulate::py_len(fit$site_names_) == 1L) {
      return("the site's own standard error")
    }
    return(switch(py_chr(fit$method_),
                  blup = if (identical(py_chr(fit$test), "knha")) {
                    sprintf("Knapp-Hartung %s random-effects standard error, t quantiles", py_chr(fit$tau2_method))
                  } else {
                    sprintf("analytic %s random-effects standard error", py_chr(fit$tau2_method))
                  },
                  "analytic fixed-effect standard error"))
  }
  switch(origin,
         bootstrap = "bootstrap of the penalized fusion",
         conditional = "standard error conditional on the fused groups",
         eb_bootstrap = , eb_posterior = paste0(
           "bootstrap of the whole procedure",
           if (is_py_none(inf$calibration)) "" else " calibrated by a double bootstrap",
           ", no standard error"),
         paste(origin, "inference"))
}

# Names of the fused estimates: the site for one coefficient, "site:term" for several.
fused_names <- function(object) {
  if (length(object$terms) == 1L) {
    return(object$sites)
  }
  as.vector(t(outer(object$sites, object$terms, paste, sep = ":")))
}

# Per-coefficient between-site variance of the summary methods (NULL for "fusion").
method_tau2 <- function(fit) {
  details <- fit$method_details_
  if (!isTRUE(reticulate::py_to_r(details$`__contains__`("tau2")))) {
    return(NULL)
  }
  py_num(reticulate::py_get_item(details, "tau2"))
}

# One line saying how the sites were combined, in the terms of the method used.
method_line <- function(x, digits) {
  K <- length(x$sites)
  tau <- if (is.null(x$tau2)) "" else sprintf("; tau^2 = %s", paste(format(x$tau2, digits = digits),
                                                                   collapse = ", "))
  if (K == 1L) {
    return("Late fusion of 1 site (nothing to pool: the fused estimate and the center are the site's own)")
  }
  paste0("Late fusion of ", n_of(K, "site"), switch(x$method,
         fusion = sprintf(" (penalized fusion): lambda = %s (%s; lambda_max = %s), %d fused with the center",
                          format(x$lambda, digits = digits), x$lambda_rule,
                          format(x$lambda_max, digits = digits), sum(x$fused)),
         robust_eb = sprintf(" (robust empirical Bayes): %d shrunk towards the center, %d kept on their own%s",
                             sum(x$fused), K - sum(x$fused), tau),
         blup = sprintf(" (random-effects BLUP)%s", tau),
         fixed = " (fixed-effect pooling: every site gets the pooled estimate)",
         own = " (no pooling: every site keeps its own estimate)",
         sprintf(" (method '%s')", x$method)))
}

print.hetmtl_late_fusion <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  cat(method_line(x, digits), "\n", sep = "")
  # Fits saved by an earlier version hold only the inference asked for.
  origin <- if (is.null(x$center_interval)) paste(x$inference, "inference") else x$center_interval
  if (x$inference == "none") {
    cat("\nCenter (no inference):\n")
  } else {
    cat(sprintf("\nCenter (%s; %g%% intervals):\n", origin, 100 * x$level))
  }
  ct <- x$center_table[, -1, drop = FALSE]
  print(format(ct, digits = digits), quote = FALSE)
  cat("\nSites:\n")
  tab <- summary(x)
  keep <- c("site", if (length(x$terms) > 1L) "term", "n", "estimate", "std_err",
            "fused_estimate", "fused_std_err", if (x$method %in% c("fusion", "robust_eb")) "fused")
  print(format(tab[, keep], digits = digits), row.names = FALSE, quote = FALSE)
  if (x$method %in% c("fusion", "robust_eb")) {
    cat(if (x$method == "fusion") "(fused: equal to the center)\n" else
      "(fused: in the group shrunk towards the center, not an outlying site)\n")
  }
  invisible(x)
}

# Per-site table of a late fusion fit (documented in man/).
summary.hetmtl_late_fusion <- function(object, level = NULL, ...) {
  level <- check_level(level, allow_null = TRUE)
  object$py <- py_fit(object, "summary")
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
  object$py <- py_fit(object, "confint")
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
  fit$py <- py_fit(fit, "heterogeneity")
  ma <- py_call(fit$py$heterogeneity(coef = as.integer(j - 1L), level = level))
  s <- py_call(ma$summary()$reset_index())
  h <- py_call(ma$heterogeneity_table()$reset_index())
  models <- as.character(py_column(s, "model"))
  table <- data.frame(
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
  se <- sqrt(vapply(seq_along(fit$sites), function(k) fit$site_vcov[[k]][j, j], numeric(1)))
  structure(list(table = table, term = fit$terms[j], level = if (is.null(level)) fit$level else level,
                 sites = fit$sites, estimate = unname(fit$estimate[, j]), se = se),
            class = "hetmtl_heterogeneity")
}

print.hetmtl_heterogeneity <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  tab <- x$table
  cat(sprintf("Meta-analysis of '%s' over %s (%g%% intervals)\n\n", x$term, n_of(length(x$sites), "site"),
              100 * x$level))
  est <- tab[, c("estimate", "std_err", "z", "p_value", "ci_lower", "ci_upper")]
  names(est) <- c("Estimate", "Std. Error", "z value", "Pr(>|z|)", "CI lower", "CI upper")
  print(format(est, digits = digits), quote = FALSE)
  re <- tab[tab$model != tab$model[1], , drop = FALSE]
  q <- tab[1, ]
  cat(sprintf("\nCochran's Q = %s on %d df (p = %s)\n", format(q$Q, digits = digits), as.integer(q$Q_df),
              format.pval(q$Q_p_value, digits = digits)))
  for (i in seq_len(nrow(re))) {
    cat(sprintf("%s: tau^2 = %s, I^2 = %s%%, H^2 = %s, prediction interval [%s, %s]\n", re$model[i],
                format(re$tau2[i], digits = digits), format(re$I2[i], digits = digits),
                format(re$H2[i], digits = digits), format(re$pi_lower[i], digits = digits),
                format(re$pi_upper[i], digits = digits)))
  }
  invisible(x)
}

summary.hetmtl_heterogeneity <- function(object, ...) {
  object$table
}

as.data.frame.hetmtl_heterogeneity <- function(x, ...) {
  x$table
}

coef.hetmtl_heterogeneity <- function(object, ...) {
  stats::setNames(object$table$estimate, object$table$model)
}

confint.hetmtl_heterogeneity <- function(object, parm, level = NULL, ...) {
  if (!is.null(level) && !isTRUE(all.equal(check_level(level), object$level))) {
    arg_error("level", "the intervals were computed at ", object$level,
              "; call heterogeneity(fit, level = ", level, ")")
  }
  out <- as.matrix(object$table[, c("ci_lower", "ci_upper")])
  dimnames(out) <- list(object$table$model, ci_colnames(object$level))
  out[select_parm(parm, rownames(out)), , drop = FALSE]
}

# Forest plot of the site estimates with each pooled estimate and the random-effects prediction
# interval for a new site.
plot.hetmtl_heterogeneity <- function(x, main = NULL, xlab = NULL, xlim = NULL, ...) {
  z <- stats::qnorm(0.5 + x$level / 2)
  lo <- x$estimate - z * x$se
  hi <- x$estimate + z * x$se
  tab <- x$table
  K <- length(x$sites)
  M <- nrow(tab)
  if (is.null(xlim)) {
    xs <- c(lo, hi, tab$ci_lower, tab$ci_upper, tab$pi_lower, tab$pi_upper)
    xlim <- range(xs[is.finite(xs)])
  }
  if (is.null(main)) main <- sprintf("Meta-analysis of '%s'", x$term)
  if (is.null(xlab)) xlab <- sprintf("%s (%g%% intervals)", x$term, 100 * x$level)
  labels <- c(x$sites, tab$model)
  old <- graphics::par(mar = c(4.5, max(5, 0.6 * max(nchar(labels))) + 1, 3, 1))
  on.exit(graphics::par(old), add = TRUE)
  y_sites <- rev(seq_len(K)) + M + 0.5
  y_models <- rev(seq_len(M))
  graphics::plot(NA, xlim = xlim, ylim = c(0.3, K + M + 1), yaxt = "n", xlab = xlab, ylab = "",
                 main = main, ...)
  graphics::segments(lo, y_sites, hi, y_sites, col = "grey40")
  graphics::points(x$estimate, y_sites, pch = 15, col = "grey30")
  pi_ok <- is.finite(tab$pi_lower) & is.finite(tab$pi_upper)
  graphics::segments(tab$pi_lower[pi_ok], y_models[pi_ok], tab$pi_upper[pi_ok], y_models[pi_ok],
                     lty = 3, col = "#1f77b4")
  graphics::segments(tab$ci_lower, y_models, tab$ci_upper, y_models, col = "#1f77b4", lwd = 2)
  graphics::points(tab$estimate, y_models, pch = 23, bg = "#1f77b4", col = "#1f77b4", cex = 1.3)
  graphics::axis(2, at = c(y_sites, y_models), labels = labels, las = 1, tick = FALSE)
  invisible(x)
}

# ---------------------------------------------------------------- further S3 methods

nobs.hetmtl_late_fusion <- function(object, ...) {
  sum(object$n)
}

# Covariance of the fused estimates ("fused", in the order of coef()), of the center, or of the
# sites' own estimates ("site": block-diagonal, sites are independent).
vcov.hetmtl_late_fusion <- function(object, type = c("fused", "center", "site"), ...) {
  type <- check_choice(type[1], "type", c("fused", "center", "site"))
  K <- length(object$sites)
  p <- length(object$terms)
  if (type == "site") {
    out <- matrix(0, K * p, K * p)
    for (k in seq_len(K)) {
      idx <- (k - 1L) * p + seq_len(p)
      out[idx, idx] <- object$site_vcov[[k]]
    }
    dimnames(out) <- list(fused_names(object), fused_names(object))
    return(out)
  }
  object$py <- py_fit(object, "vcov")
  inf <- object$py$inference_
  draws_name <- if (type == "fused") "theta_draws" else "center_draws"
  draws <- if (is_py_none(inf)) NULL else reticulate::py_get_attr(inf, draws_name)
  if (is.null(draws) || is_py_none(draws)) {
    stop("vcov: this fit has no covariance matrix of the ",
         if (type == "fused") "fused estimates" else "center", ": ", no_vcov_reason(object),
         ". A covariance matrix comes from the bootstrap draws of method = \"fusion\" with ",
         "inference = \"bootstrap\"; vcov(type = \"site\") gives that of the sites' own estimates",
         call. = FALSE)
  }
  arr <- reticulate::py_to_r(draws)
  mat <- matrix(as.numeric(aperm(array(arr, dim = c(dim(arr)[1], if (type == "fused") c(K, p) else p)),
                                 c(1, rev(seq_along(dim(arr))[-1])))), nrow = dim(arr)[1])
  out <- stats::cov(mat)
  nm <- if (type == "fused") fused_names(object) else object$terms
  dimnames(out) <- list(nm, nm)
  out
}

# Why a late fusion fit has no bootstrap draws to take a covariance from, for vcov()'s error.
no_vcov_reason <- function(object) {
  if (object$inference == "none") {
    return("it was fitted with inference = \"none\"")
  }
  switch(object$method,
         robust_eb = , gmodel_eb = paste0("method '", object$method, "' gives intervals from a bootstrap ",
                                          "of the whole procedure, without standard errors"),
         fusion = paste0("inference '", object$inference, "' gives standard errors (see summary()) ",
                         "but no joint covariance"),
         paste0("method '", object$method, "' gives each estimate an analytic standard error (see ",
                "summary()) but no joint covariance"))
}

# Estimates for sites: the fused estimate of each named site of the fit, and the center for a site
# the fit has not seen (what a new site similar to the others would get).
predict.hetmtl_late_fusion <- function(object, newdata = NULL, type = c("fused", "site", "center"), ...) {
  type <- check_choice(type[1], "type", c("fused", "site", "center"))
  sites <- if (is.null(newdata)) object$sites else newdata
  if (is.data.frame(sites)) {
    if (is.null(sites$site)) arg_error("newdata", "a data frame needs a column 'site'")
    sites <- sites$site
  }
  if (!is.character(sites) && !is.factor(sites)) {
    arg_error("newdata", "must be site names (a character vector) or a data frame with a column 'site'")
  }
  sites <- as.character(sites)
  m <- if (type == "site") object$estimate else object$fused_estimate
  out <- t(vapply(sites, function(s) {
    if (type == "center" || !(s %in% object$sites)) {
      if (type == "site" && !(s %in% object$sites)) {
        arg_error("newdata", "site '", s, "' is not in the fit; it has no own estimate")
      }
      return(unname(object$center))
    }
    unname(m[s, ])
  }, numeric(length(object$terms))))
  if (length(object$terms) == 1L) {
    out <- t(out)
  }
  dimnames(out) <- list(sites, object$terms)
  if (length(object$terms) == 1L) stats::setNames(out[, 1], sites) else out
}
