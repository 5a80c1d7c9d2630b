# Forest plot of a late fusion fit, drawn with base graphics (no Python display needed).

# Forest plot of a late fusion fit (documented in man/).
plot.hetmtl_late_fusion <- function(x, type = c("forest", "path"), term = 1, level = NULL,
                                    main = NULL, xlab = NULL, xlim = NULL, legend = TRUE, ...) {
  type <- check_choice(type[1], "type", c("forest", "path"))
  j <- select_parm(term, x$terms)
  if (length(j) != 1L) {
    arg_error("term", "give a single coefficient")
  }
  if (type == "path") {
    return(invisible(path_plot(x, j, main = main, xlab = xlab, xlim = xlim, legend = legend, ...)))
  }
  level <- check_level(level, allow_null = TRUE)
  lev <- if (is.null(level)) x$level else level
  tab <- summary(x, level = level)
  tab <- tab[tab$term == x$terms[j], , drop = FALSE]
  center <- center_at_level(x, lev)[j, ]
  K <- nrow(tab)
  y <- rev(seq_len(K)) + 1.5
  y_center <- 0.8
  fused_col <- ifelse(tab$fused, "#1f77b4", "#d62728")
  xs <- c(tab$ci_lower, tab$ci_upper, tab$fused_ci_lower, tab$fused_ci_upper,
          tab$estimate, tab$fused_estimate, unlist(center[c("estimate", "ci_lower", "ci_upper")]))
  if (is.null(xlim)) {
    xlim <- range(xs[is.finite(xs)])
    xlim <- xlim + c(-0.05, 0.05) * diff(xlim)
  } else if (!is.numeric(xlim) || length(xlim) != 2L || any(!is.finite(xlim))) {
    arg_error("xlim", "must be two finite numbers")
  }
  if (is.null(main)) main <- plot_title(x)
  if (is.null(xlab)) xlab <- sprintf("%s (%g%% intervals)", x$terms[j], 100 * lev)

  old <- graphics::par(mar = c(4.5, max(5, 0.6 * max(nchar(c(tab$site, "center")))) + 1, 3, 1))
  on.exit(graphics::par(old), add = TRUE)
  graphics::plot.new()
  # Room above the first site for a two-row legend.
  graphics::plot.window(xlim = xlim, ylim = c(0.3, K + if (legend) 3 else 2.2), ...)
  # The center line stops below the legend.
  graphics::segments(center$estimate, 0, center$estimate, K + 2.1, lty = 2, col = "#1f77b4")
  graphics::segments(tab$ci_lower, y + 0.15, tab$ci_upper, y + 0.15, col = "grey40")
  graphics::points(tab$estimate, y + 0.15, pch = 21, bg = "white", col = "grey30")
  ok <- is.finite(tab$fused_ci_lower) & is.finite(tab$fused_ci_upper)
  graphics::segments(tab$fused_ci_lower[ok], y[ok] - 0.15, tab$fused_ci_upper[ok], y[ok] - 0.15,
                     col = fused_col[ok])
  graphics::points(tab$fused_estimate, y - 0.15, pch = 15, col = fused_col)
  if (is.finite(center$ci_lower) && is.finite(center$ci_upper)) {
    graphics::segments(center$ci_lower, y_center, center$ci_upper, y_center, col = "#1f77b4", lwd = 1.5)
  }
  graphics::points(center$estimate, y_center, pch = 23, bg = "#1f77b4", col = "#1f77b4", cex = 1.3)
  graphics::axis(1)
  graphics::axis(2, at = c(y, y_center), labels = c(tab$site, "center"), las = 1, tick = FALSE)
  graphics::box()
  graphics::title(main = main, xlab = xlab)
  if (legend) {
    graphics::legend("top", bty = "n", cex = 0.8, ncol = 2,
                     legend = c("site estimate", "fused (with center)", "fused (own value)", "center"),
                     pch = c(21, 15, 15, 23), col = c("grey30", "#1f77b4", "#d62728", "#1f77b4"),
                     pt.bg = c("white", NA, NA, "#1f77b4"))
  }
  attr(tab, "center") <- center
  invisible(tab)
}

center_at_level <- function(x, level) {
  if (isTRUE(all.equal(level, x$level))) {
    return(x$center_table)
  }
  cs <- py_call(py_fit(x, "plot")$center_summary(level = level))
  data.frame(
    term = x$terms,
    estimate = x$center,
    std_err = as.numeric(py_column(cs, "std err")),
    ci_lower = as.numeric(py_column(cs, "ci lower")),
    ci_upper = as.numeric(py_column(cs, "ci upper")),
    row.names = x$terms, stringsAsFactors = FALSE
  )
}

plot_title <- function(x) {
  if (x$method == "fusion") {
    return(sprintf("Late fusion, lambda = %s", format(x$lambda, digits = 3)))
  }
  sprintf("Late fusion (%s)", switch(x$method, robust_eb = "robust empirical Bayes",
                                     blup = "random-effects BLUP", fixed = "fixed effect",
                                     own = "no pooling", x$method))
}

# The fusion path: each site's fused estimate of one coefficient against lambda (log scale), the
# center, and the chosen lambda where the fit used the penalized fusion.
path_plot <- function(x, j, main = NULL, xlab = NULL, xlim = NULL, legend = TRUE, ...) {
  x$py <- py_fit(x, "plot")
  path <- x$py$path_
  lambdas <- py_num(path$lambdas)
  theta <- reticulate::py_to_r(path$theta)
  theta <- array(theta, dim = c(length(lambdas), length(x$sites), length(x$terms)))[, , j, drop = FALSE]
  theta <- matrix(theta, nrow = length(lambdas))
  center <- matrix(reticulate::py_to_r(path$center), nrow = length(lambdas))[, j]
  keep <- lambdas > 0
  if (is.null(xlim)) xlim <- range(lambdas[keep])
  if (is.null(main)) main <- "Fusion path"
  if (is.null(xlab)) xlab <- "lambda (log scale)"
  cols <- grDevices::hcl.colors(length(x$sites), "Dark 3")
  graphics::matplot(lambdas[keep], theta[keep, , drop = FALSE], type = "l", lty = 1, col = cols,
                    log = "x", xlim = xlim, main = main, xlab = xlab, ylab = x$terms[j], ...)
  graphics::lines(lambdas[keep], center[keep], lty = 2, lwd = 2)
  if (x$method == "fusion" && is.finite(x$lambda) && x$lambda > 0) {
    graphics::abline(v = x$lambda, lty = 3)
  }
  if (legend) {
    graphics::legend("topright", bty = "n", cex = 0.8, legend = c(x$sites, "center"),
                     col = c(cols, "black"), lty = c(rep(1, length(x$sites)), 2))
  }
  out <- data.frame(lambda = rep(lambdas, length(x$sites) + 1L),
                    site = rep(c(x$sites, "center"), each = length(lambdas)),
                    estimate = c(as.vector(theta), center), stringsAsFactors = FALSE)
  out
}
