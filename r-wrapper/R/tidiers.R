# broom-style tidy(), glance() and augment() methods (generics from the 'generics' package, which
# broom re-exports): tibble-free data frames with broom's column names.

tidy_ci <- function(out, conf.int, lower, upper) {
  if (isTRUE(conf.int)) {
    out$conf.low <- lower
    out$conf.high <- upper
  }
  out
}

tidy.hetmtl_site_dml <- function(x, conf.int = FALSE, conf.level = 0.95, ...) {
  s <- summary(x, level = conf.level)
  out <- data.frame(term = s$term, estimate = s$estimate, std.error = s$std_err, statistic = s$z,
                    p.value = s$p_value, stringsAsFactors = FALSE, row.names = NULL)
  tidy_ci(out, conf.int, s$ci_lower, s$ci_upper)
}

glance.hetmtl_site_dml <- function(x, ...) {
  data.frame(site = x$site, model = x$model, learner = x$learner, nobs = x$nobs,
             n_folds = x$n_folds, n_rep = x$n_rep, n_clusters = x$n_clusters,
             seed = if (is.null(x$seed)) NA_integer_ else x$seed, stringsAsFactors = FALSE)
}

tidy.hetmtl_site_summary <- function(x, conf.int = FALSE, conf.level = 0.95, ...) {
  z <- stats::qnorm(0.5 + check_level(conf.level, "conf.level") / 2)
  out <- data.frame(term = names(x$estimate), estimate = unname(x$estimate),
                    std.error = unname(x$se), stringsAsFactors = FALSE)
  tidy_ci(out, conf.int, out$estimate - z * out$std.error, out$estimate + z * out$std.error)
}

# One row per site (and coefficient): the fused estimate with its standard error, the site's own
# estimate, and whether the site was fused.
tidy.hetmtl_late_fusion <- function(x, conf.int = FALSE, conf.level = NULL, ...) {
  s <- summary(x, level = conf.level)
  out <- data.frame(site = s$site, term = s$term, estimate = s$fused_estimate,
                    std.error = s$fused_std_err, site_estimate = s$estimate,
                    site_std.error = s$std_err, fused = s$fused, weight = s$weight_pct / 100,
                    stringsAsFactors = FALSE)
  tidy_ci(out, conf.int, s$fused_ci_lower, s$fused_ci_upper)
}

glance.hetmtl_late_fusion <- function(x, ...) {
  out <- data.frame(method = x$method, n_sites = length(x$sites), nobs = stats::nobs(x),
                    n_fused = sum(x$fused), lambda = x$lambda, inference = x$inference,
                    stringsAsFactors = FALSE)
  if (length(x$terms) == 1L) {
    out$center <- unname(x$center)
    out$center_std.error <- x$center_table$std_err
  }
  out
}

# The per-site table with the fused estimate as .fitted and the shrinkage (own minus fused) as
# .resid.
augment.hetmtl_late_fusion <- function(x, ...) {
  s <- summary(x)
  data.frame(site = s$site, term = s$term, n = s$n, estimate = s$estimate, std.error = s$std_err,
             .fitted = s$fused_estimate, .resid = s$estimate - s$fused_estimate,
             .fused = s$fused, stringsAsFactors = FALSE)
}

tidy.hetmtl_heterogeneity <- function(x, conf.int = FALSE, ...) {
  t <- x$table
  out <- data.frame(model = t$model, estimate = t$estimate, std.error = t$std_err, statistic = t$z,
                    p.value = t$p_value, tau2 = t$tau2, i.squared = t$I2, stringsAsFactors = FALSE)
  tidy_ci(out, conf.int, t$ci_lower, t$ci_upper)
}

glance.hetmtl_heterogeneity <- function(x, ...) {
  t <- x$table
  re <- t[nrow(t), ]
  data.frame(term = x$term, n_sites = length(x$sites), statistic = t$Q[1], df = t$Q_df[1],
             p.value = t$Q_p_value[1], tau2 = re$tau2, i.squared = re$I2, h.squared = re$H2,
             pi.low = re$pi_lower, pi.high = re$pi_upper, stringsAsFactors = FALSE)
}

# Per-task table of a neural fit.
tidy.hetmtl_neural <- function(x, ...) {
  s <- summary(x)$tasks
  s
}

glance.hetmtl_neural <- function(x, ...) {
  data.frame(nobs = stats::nobs(x), n_tasks = length(x$tasks),
             rmse = sqrt(mean(x$residuals^2)), seed = x$seed, stringsAsFactors = FALSE)
}

# `data` (the training rows by default... which the fit does not keep, so give them) or `newdata`
# with .fitted, and .resid where the response is known.
augment.hetmtl_neural <- function(x, data = NULL, newdata = NULL, ...) {
  if (!is.null(newdata)) {
    out <- newdata
    out$.fitted <- stats::predict(x, newdata)
    if (!is.null(newdata[[x$y]])) out$.resid <- newdata[[x$y]] - out$.fitted
    return(out)
  }
  if (is.null(data)) {
    arg_error("data", "give the rows the model was fitted on (the fit keeps only their ",
              "response, fitted values and residuals), or newdata")
  }
  if (nrow(data) != x$nobs) {
    arg_error("data", "has ", nrow(data), " rows but the fit used ", x$nobs,
              if (!is.null(x$na.action)) " (after removing rows with missing values)")
  }
  data$.fitted <- x$fitted.values
  data$.resid <- x$residuals
  data
}
