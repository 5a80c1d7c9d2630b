# Five published estimates; the last site is an outlier.
lf_sites <- function() {
  est <- c(0.10, 0.12, 0.08, 0.11, 0.60)
  se <- c(0.030, 0.040, 0.035, 0.030, 0.050)
  n <- c(400, 300, 350, 420, 380)
  sites <- paste0("s", 1:5)
  stats::setNames(lapply(1:5, function(k) {
    site_summary_from_estimate(c(effect = est[k]), se = se[k], n = n[k], site = sites[k])
  }), sites)
}

test_that("late_fusion equals LateFusion for a fixed lambda and seed", {
  skip_if_no_hetmtl()
  sums <- lf_sites()
  fit <- late_fusion(sums, lam = 1.5, n_boot = 40, seed = 3)
  py_sums <- reticulate::py_dict(names(sums), unname(lapply(sums, function(s) s$py)), convert = FALSE)
  ref <- py_fusion("late_fusion")$LateFusion(lam = 1.5, n_boot = 40L, random_state = 3L)$fit(py_sums)
  expect_equal(unname(coef(fit)), py_vec(ref$theta_), tolerance = 1e-13)
  expect_equal(unname(coef(fit, type = "center")), py_vec(ref$center_), tolerance = 1e-13)
  expect_identical(fit$lambda, 1.5)
  expect_identical(unname(fit$fused), as.logical(unlist(reticulate::py_to_r(ref$fused_mask_$tolist()))))
  # The four similar sites are fused with the center; the outlier is not, and stays above it.
  expect_identical(unname(fit$fused), c(TRUE, TRUE, TRUE, TRUE, FALSE))
  expect_true(coef(fit)[["s5"]] > coef(fit, type = "center")[["effect"]] + 0.3)
  tab <- summary(fit, level = 0.9)
  ref_tab <- ref$summary(level = 0.9)
  expect_equal(tab$fused_std_err, py_vec(reticulate::py_get_item(ref_tab, "fused std err")$tolist()),
               tolerance = 1e-13)
  expect_equal(tab$fused_ci_upper, py_vec(reticulate::py_get_item(ref_tab, "fused ci upper")$tolist()),
               tolerance = 1e-13)
  expect_equal(tab$weight_pct, py_vec(reticulate::py_get_item(ref_tab, "weight %")$tolist()),
               tolerance = 1e-13)
  ci <- confint(fit)
  ref_ci <- py_matrix(ref$confint()$to_numpy())
  expect_equal(unname(ci), ref_ci, tolerance = 1e-13)
  # Own estimates and their Wald intervals need no Python to check.
  expect_equal(tab$estimate, c(0.10, 0.12, 0.08, 0.11, 0.60), tolerance = 1e-15)
  expect_equal(tab$ci_upper - tab$estimate, qnorm(0.95) * tab$std_err, tolerance = 1e-12)
})

test_that("lam = 'cv' uses the sites' fold summaries as the Python side does", {
  skip_if_no_hetmtl()
  fits <- lapply(1:3, function(k) {
    site_dml(sim_plr(90, theta = c(0.5, 0.55, 1.2)[k], seed = 20 + k), y = "y", d = "d",
             x = c("x1", "x2", "x3"),
             learner = "linear", n_folds = 3, seed = k, site = paste0("site", k))
  })
  fit <- late_fusion(fits, lam = "cv", inference = "conditional", seed = 1)
  py_list <- reticulate::r_to_py(lapply(fits, function(f) f$py$summary_))
  ref <- py_fusion("late_fusion")$LateFusion(lam = "cv", inference = "conditional",
                                             random_state = 1L)$fit(py_list)
  expect_identical(fit$sites, c("site1", "site2", "site3"))
  expect_match(fit$lambda_rule, "^cv")
  expect_equal(fit$lambda, py_vec(ref$lambda_), tolerance = 1e-13)
  expect_equal(unname(coef(fit)), py_vec(ref$theta_), tolerance = 1e-12)
  expect_equal(unname(confint(fit)), py_matrix(ref$confint()$to_numpy()), tolerance = 1e-12)
})

test_that("summaries can be given as JSON paths, and list names name the sites", {
  skip_if_no_hetmtl()
  sums <- lf_sites()
  dir <- tempfile("summaries")
  dir.create(dir)
  on.exit(unlink(dir, recursive = TRUE))
  paths <- vapply(names(sums), function(s) {
    write_site_summary(sums[[s]], file.path(dir, paste0(s, ".json")))
  }, character(1))
  from_files <- late_fusion(unname(paths), lam = 0.02, n_boot = 20, seed = 1)
  in_memory <- late_fusion(unname(sums), lam = 0.02, n_boot = 20, seed = 1)
  expect_identical(coef(from_files), coef(in_memory))
  expect_identical(names(coef(in_memory)), paste0("s", 1:5))
  renamed <- late_fusion(stats::setNames(unname(sums), LETTERS[1:5]), lam = 0.02, inference = "none")
  expect_identical(names(coef(renamed)), LETTERS[1:5])
  expect_true(all(is.na(confint(renamed))))
  # Without inference the fused intervals are R's NA (not NaN), and print says so.
  tab <- summary(renamed)
  expect_true(all(is.na(tab$fused_std_err)) && !any(is.nan(tab$fused_std_err)))
  expect_output(print(renamed), "Center \\(no inference\\)")
})

test_that("S3 methods return the documented shapes, also with two coefficients", {
  skip_if_no_hetmtl()
  V <- diag(c(0.01, 0.02))
  sums <- list(
    a = site_summary_from_estimate(c(b1 = 0.1, b2 = 1.0), cov = V, n = 200),
    b = site_summary_from_estimate(c(b1 = 0.2, b2 = 1.1), cov = V, n = 250),
    c = site_summary_from_estimate(c(b1 = 0.9, b2 = 0.2), cov = V, n = 220)
  )
  fit <- late_fusion(sums, lam = 0.05, n_boot = 30, seed = 2)
  expect_s3_class(fit, "hetmtl_late_fusion")
  tab <- summary(fit)
  expect_identical(dim(tab), c(6L, 13L))
  expect_identical(names(tab), c("site", "term", "n", "estimate", "std_err", "ci_lower", "ci_upper",
                                 "fused_estimate", "fused_std_err", "fused_ci_lower",
                                 "fused_ci_upper", "fused", "weight_pct"))
  expect_identical(tab$term, rep(c("b1", "b2"), 3))
  expect_identical(names(coef(fit)), c("a:b1", "a:b2", "b:b1", "b:b2", "c:b1", "c:b2"))
  expect_equal(unname(coef(fit)), tab$fused_estimate, tolerance = 0)
  expect_equal(unname(coef(fit, type = "site")), c(0.1, 1.0, 0.2, 1.1, 0.9, 0.2), tolerance = 1e-15)
  expect_identical(names(coef(fit, type = "center")), c("b1", "b2"))
  ci <- confint(fit, c("a:b2", "c:b1"), level = 0.8)
  expect_identical(dim(ci), c(2L, 2L))
  expect_identical(colnames(ci), c("10 %", "90 %"))
  expect_error(confint(fit, "zz"), "parm: unknown name\\(s\\) 'zz'")
  expect_output(print(fit), "Late fusion of 3 sites \\(penalized fusion\\): lambda = 0.05 \\(given")
  het <- summary(heterogeneity(fit, term = "b2"))
  expect_identical(dim(het), c(3L, 17L))
  expect_identical(het$model, c("fixed", "random (DL)", "random (REML)"))
  # Fixed-effect pooling of b2 by hand.
  w <- 1 / c(0.02, 0.02, 0.02)
  expect_equal(het$estimate[1], sum(w * c(1.0, 1.1, 0.2)) / sum(w), tolerance = 1e-12)
  expect_equal(het$std_err[1], sqrt(1 / sum(w)), tolerance = 1e-12)

  pdf_file <- tempfile(fileext = ".pdf")
  grDevices::pdf(pdf_file)
  drawn <- plot(fit, term = "b2")
  grDevices::dev.off()
  on.exit(unlink(pdf_file))
  expect_true(file.size(pdf_file) > 0)
  expect_identical(nrow(drawn), 3L)
  expect_identical(unique(drawn$term), "b2")
  expect_equal(attr(drawn, "center")$estimate, unname(coef(fit, type = "center")["b2"]), tolerance = 0)
  expect_error(plot(fit, term = 3), "parm: must be names or positions")
})

test_that("heterogeneity matches metafor's rma() (DL and REML)", {
  skip_if_no_hetmtl()
  skip_if_not_installed("metafor")
  sums <- lf_sites()
  fit <- late_fusion(sums, lam = 0.02, inference = "none")
  het <- as.data.frame(heterogeneity(fit))
  yi <- c(0.10, 0.12, 0.08, 0.11, 0.60)
  vi <- c(0.030, 0.040, 0.035, 0.030, 0.050)^2
  for (m in c("FE", "DL", "REML")) {
    # metafor's default REML threshold (1e-5) is looser than the Python side's; tighten it.
    ref <- metafor::rma(yi = yi, vi = vi, method = m, control = list(threshold = 1e-12, maxiter = 1000))
    row <- c(FE = "fixed", DL = "random (DL)", REML = "random (REML)")[[m]]
    expect_equal(het[row, "estimate"], as.numeric(ref$b), tolerance = 1e-6)
    expect_equal(het[row, "std_err"], ref$se, tolerance = 1e-6)
    expect_equal(het[row, "Q"], ref$QE, tolerance = 1e-8)
    if (m != "FE") {
      expect_equal(het[row, "tau2"], ref$tau2, tolerance = 1e-6)
      expect_equal(het[row, "I2"], ref$I2, tolerance = 1e-6)
      expect_equal(het[row, "H2"], ref$H2, tolerance = 1e-6)
    }
  }
})

test_that("lam = 'cv' without fold summaries falls back with an R warning", {
  skip_if_no_hetmtl()
  expect_warning(fit <- late_fusion(lf_sites(), lam = "cv", n_boot = 20, seed = 1),
                 "needs fold summaries from every site")
  expect_identical(fit$lambda_rule, "default C*sqrt(p) (in standard errors)")
  # C sqrt(p) times the root mean inverse per-observation variance 1 / (n_k se_k^2)
  est_scale <- sqrt(mean(1 / (c(400, 300, 350, 420, 380) * c(0.030, 0.040, 0.035, 0.030, 0.050)^2)))
  expect_equal(fit$lambda, 0.1 * est_scale, tolerance = 1e-12)
  expect_equal(fit$lambda, 0.14759137408125, tolerance = 1e-12)
  expect_no_warning(late_fusion(lf_sites(), n_boot = 20, seed = 1, C = 0.3, lam = 0.3))
})

test_that("input errors name the argument", {
  skip_if_no_hetmtl()
  sums <- lf_sites()
  expect_error(late_fusion(list()), "summaries: expected a non-empty list")
  expect_error(late_fusion(list(sums[[1]], 0.3)), "summaries: element 2 is a numeric, not a site summary")
  expect_error(late_fusion(file.path(tempdir(), "absent.json")), "summaries: file .* does not exist")
  same <- list(site_summary_from_estimate(0.1, se = 0.1), site_summary_from_estimate(0.2, se = 0.1))
  expect_error(late_fusion(same), "site names must be unique, repeated: 'site'; name the list")
  expect_error(late_fusion(stats::setNames(unname(sums[1:2]), c("a", ""))), "summaries: name every element")
  expect_error(late_fusion(sums, lam = "auto"), "lam: must be one of 'cv'")
  expect_error(late_fusion(sums, lam = -1), "lam: must be a finite number >= 0")
  expect_error(late_fusion(sums, level = 1.5), "level: must be a number in \\(0, 1\\)")
  expect_error(late_fusion(sums, n_boot = 1), "n_boot: must be a whole number >= 2")
  expect_error(late_fusion(sums, weight = "equal"), "weight: must be one of 'precision', 'hessian'")
  expect_error(late_fusion(sums, penalty = "l1"), "penalty: must be one of")
  expect_error(late_fusion(sums, inference = "jackknife"), "inference: must be one of")
  expect_error(late_fusion(sums, lam = 0.1, nlambda = 10), "\\.\\.\\.: unknown option\\(s\\) 'nlambda'")
  expect_error(late_fusion(sums, lam = 0.1, cv_rule = "max"), "cv_rule: must be one of 'min', '1se'")
  expect_error(late_fusion(sums, seed = 1.5), "seed: must be a whole number")
  mixed <- list(a = sums[[1]], b = site_summary_from_estimate(c(other = 0.1), se = 0.1))
  expect_error(late_fusion(mixed, lam = 0.1), "summaries: site 'b' names its coefficients")
  fit <- late_fusion(sums, lam = 0.02, inference = "none")
  expect_error(heterogeneity(fit, term = "x"), "parm: unknown name")
  expect_error(summary(fit, level = 2), "level: must be a number in \\(0, 1\\)")
})

test_that("the default is robust empirical Bayes; method and its options reach Python", {
  skip_if_no_hetmtl()
  sums <- lf_sites()
  fit <- late_fusion(sums, n_boot = 60, seed = 2)
  py_sums <- reticulate::py_dict(names(sums), unname(lapply(sums, function(s) s$py)), convert = FALSE)
  ref <- py_fusion("late_fusion")$LateFusion(n_boot = 60L, random_state = 2L)$fit(py_sums)
  expect_identical(py_chr(ref$method_), "robust_eb")
  expect_equal(unname(coef(fit)), py_vec(ref$theta_), tolerance = 1e-13)
  expect_true(is.na(fit$lambda))
  # The outlying fifth site keeps (nearly) its own estimate; the others pool.
  expect_equal(coef(fit)[["s5"]], 0.60, tolerance = 0.01)
  expect_identical(unname(fit$fused), c(TRUE, TRUE, TRUE, TRUE, FALSE))
  ci <- confint(fit)
  expect_true(all(ci[, 1] <= coef(fit) & coef(fit) <= ci[, 2]))
  blup <- late_fusion(sums, method = "blup", tau2_method = "DL", inference = "none")
  ref_blup <- py_fusion("late_fusion")$LateFusion(method = "blup", tau2_method = "DL",
                                                  inference = "none")$fit(py_sums)
  expect_equal(unname(coef(blup)), py_vec(ref_blup$theta_), tolerance = 1e-13)
  expect_error(late_fusion(sums, method = "bayes"), "method")
  expect_error(late_fusion(sums, slab_scale = 0.5), "slab_scale")
  expect_error(late_fusion(sums, outlying_group = "cauchy"), "outlying_group")
  expect_error(late_fusion(sums, spike = NA), "spike: must be TRUE or FALSE")
  expect_error(late_fusion(sums, model_average = "yes"), "model_average: must be TRUE or FALSE")
  expect_error(late_fusion(sums, interval_calibration = "triple"), "interval_calibration")
  expect_error(late_fusion(sums, site_intervals = "wald"), "site_intervals")
  boot <- late_fusion(sums, site_intervals = "bootstrap", seed = 1L)
  ref_boot <- py_fusion("late_fusion")$LateFusion(site_intervals = "bootstrap",
                                                  random_state = 1L)$fit(py_sums)
  expect_identical(py_chr(fit$py$site_intervals_), "posterior")
  expect_equal(unname(confint(fit)[, 1]), py_vec(ref$inference_$lower), tolerance = 1e-12)
  expect_equal(unname(confint(boot)[, 1]), py_vec(ref_boot$inference_$lower), tolerance = 1e-12)
  averaged <- late_fusion(sums, model_average = TRUE, outlying_group = "nonlocal",
                          inference = "none")
  ref_averaged <- py_fusion("late_fusion")$LateFusion(model_average = TRUE,
                                                      outlying_group = "nonlocal",
                                                      inference = "none")$fit(py_sums)
  expect_equal(unname(coef(averaged)), py_vec(ref_averaged$theta_), tolerance = 1e-13)
  expect_error(late_fusion(sums, method = "blup", lam = 1), "lam")
})

test_that("vcov() says which fits have no covariance matrix and which do", {
  skip_if_no_hetmtl()
  sums <- list(A = site_summary_from_estimate(0.3, 0.05, n = 400),
               B = site_summary_from_estimate(0.35, 0.05, n = 300),
               C = site_summary_from_estimate(0.5, 0.08, n = 100))
  eb <- late_fusion(sums, n_boot = 50, seed = 1)
  expect_identical(eb$inference, "bootstrap")
  for (type in c("fused", "center")) {
    err <- tryCatch(vcov(eb, type = type), error = conditionMessage)
    expect_match(err, "^vcov: this fit has no covariance matrix of the", info = type)
    expect_match(err, "method 'robust_eb' gives intervals from a bootstrap of the whole procedure, without standard errors",
                 fixed = TRUE, info = type)
    expect_match(err, "method = \"fusion\" with inference = \"bootstrap\"", fixed = TRUE, info = type)
    # The old message claimed standard errors the fit does not have.
    expect_false(grepl("have standard errors", err), info = type)
  }
  for (m in c("blup", "fixed", "own")) {
    expect_error(vcov(late_fusion(sums, method = m, seed = 1), type = "center"),
                 paste0("method '", m, "' gives each estimate an analytic standard error"), info = m)
  }
  expect_error(vcov(late_fusion(sums, lam = 0.1, inference = "none")), "fitted with inference = \"none\"",
               fixed = TRUE)
  # What the message recommends does give one.
  pen <- late_fusion(sums, method = "fusion", lam = 0.1, n_boot = 50, seed = 1)
  expect_identical(dim(vcov(pen)), c(3L, 3L))
  expect_identical(dim(vcov(pen, type = "center")), c(1L, 1L))
  expect_identical(dim(vcov(eb, type = "site")), c(3L, 3L))
})

test_that("print() says where the center's interval comes from, and counts one site as one", {
  skip_if_no_hetmtl()
  sums <- list(A = site_summary_from_estimate(0.3, 0.05, n = 400),
               B = site_summary_from_estimate(0.35, 0.05, n = 300),
               C = site_summary_from_estimate(0.5, 0.08, n = 100))
  heading <- function(...) {
    out <- capture.output(print(late_fusion(sums, ...)))
    out[startsWith(out, "Center (")]
  }
  expect_identical(heading(method = "blup", seed = 1),
                   "Center (analytic REML random-effects standard error; 95% intervals):")
  expect_identical(heading(method = "blup", tau2_method = "DL", level = 0.9, seed = 1),
                   "Center (analytic DL random-effects standard error; 90% intervals):")
  expect_identical(heading(method = "blup", test = "knha", seed = 1),
                   "Center (Knapp-Hartung REML random-effects standard error, t quantiles; 95% intervals):")
  expect_identical(heading(method = "fixed", seed = 1),
                   "Center (analytic fixed-effect standard error; 95% intervals):")
  expect_identical(heading(n_boot = 50, seed = 1),
                   "Center (bootstrap of the whole procedure, no standard error; 95% intervals):")
  expect_identical(heading(lam = 0.1, n_boot = 50, seed = 1),
                   "Center (bootstrap of the penalized fusion; 95% intervals):")
  expect_identical(heading(lam = 0.1, inference = "conditional"),
                   "Center (standard error conditional on the fused groups; 95% intervals):")
  expect_identical(heading(method = "blup", inference = "none"), "Center (no inference):")
  one <- suppressWarnings(late_fusion(sums["A"], n_boot = 50, seed = 1))
  out <- capture.output(print(one))
  expect_match(out[1], "^Late fusion of 1 site \\(")
  expect_false(any(grepl("1 sites", out)))
})

test_that("late_fusion(test = \"knha\") gives the Knapp-Hartung intervals of Python's LateFusion", {
  skip_if_no_hetmtl()
  sums <- list(A = site_summary_from_estimate(0.3, 0.05, n = 400),
               B = site_summary_from_estimate(0.35, 0.05, n = 300),
               C = site_summary_from_estimate(0.5, 0.08, n = 100))
  z <- late_fusion(sums, method = "blup", seed = 1)
  knha <- late_fusion(sums, method = "blup", test = "knha", seed = 1)
  width <- function(fit) unname(confint(fit)[, 2] - confint(fit)[, 1])
  expect_true(all(width(knha) > width(z)))
  ref <- reticulate::import("hetmtl.fusion")$LateFusion(method = "blup", test = "knha")$fit(
    reticulate::py_dict(names(sums), unname(lapply(sums, site_summary_py)), convert = FALSE))$summary()
  expect_equal(unname(confint(knha)[, 1]), as.numeric(ref[["fused ci lower"]]$to_numpy()),
               tolerance = 1e-12)
  expect_error(late_fusion(sums, method = "blup", test = "t"), "^test: ")
  expect_error(late_fusion(sums, test = "knha"), "test: applies to method='blup' only")
})

