# What makes the package read as R: set.seed(), formulas, factors, na.action, 1-based messages,
# whole numbers without L, and the S3 and broom methods.

test_that("set.seed() governs the random choices when no seed is given", {
  skip_if_no_hetmtl()
  df <- sim_plr(120, seed = 4)
  run <- function() site_dml(df, y = "y", d = "d", x = covariates(df), n_folds = 3, learner = "rf",
                             learner_args = list(n_estimators = 10))
  set.seed(1)
  a <- run()
  set.seed(1)
  b <- run()
  set.seed(2)
  c <- run()
  expect_identical(coef(a), coef(b))
  expect_identical(a$seed, b$seed)
  expect_false(identical(a$seed, c$seed))
  # The seed drawn is the one an explicit call reproduces.
  expect_identical(coef(site_dml(df, y = "y", d = "d", x = covariates(df), n_folds = 3,
                                 learner_args = list(n_estimators = 10), seed = a$seed)), coef(a))
  sums <- lapply(1:3, function(k) site_summary_from_estimate(c(d = 0.1 * k), se = 0.05, n = 100,
                                                             site = paste0("s", k)))
  set.seed(3)
  l1 <- late_fusion(sums, n_boot = 20)
  set.seed(3)
  l2 <- late_fusion(sums, n_boot = 20)
  expect_identical(confint(l1), confint(l2))
})

test_that("the formula interface equals the data-frame interface, with factors and na.action", {
  skip_if_no_hetmtl()
  df <- sim_plr(120, seed = 6)
  df$g <- factor(rep(c("lo", "mid", "hi"), 40), levels = c("lo", "mid", "hi"))
  df$id <- seq_len(nrow(df))
  a <- site_dml(y ~ d | x1 + x2 + g, data = df, learner = "linear", n_folds = 3, seed = 5)
  b <- site_dml(df, y = "y", d = "d", x = c("x1", "x2", "g"), learner = "linear", n_folds = 3, seed = 5)
  expect_equal(coef(a), coef(b), tolerance = 1e-12)
  expect_identical(b$x, c("x1", "x2", "gmid", "ghi"))
  # model.matrix() terms: transformations work.
  c <- site_dml(y ~ d | x1 + I(x2^2) + g, data = df, learner = "linear", n_folds = 3, seed = 5)
  expect_true("I(x2^2)" %in% c$x)
  # "." is every other column (here the ID is dropped first).
  d <- site_dml(y ~ d | ., data = df[names(df) != "id"], learner = "linear", n_folds = 3, seed = 5)
  expect_equal(coef(d), site_dml(y ~ d | x1 + x2 + x3 + g, data = df, learner = "linear",
                                 n_folds = 3, seed = 5)$coefficients, tolerance = 1e-12)
  # Missing values: omitted with na.omit (the default option), an error with na.fail.
  na <- df
  na$x1[c(3, 8)] <- NA
  fit_na <- site_dml(y ~ d | x1 + x2, data = na, learner = "linear", n_folds = 3, seed = 5,
                     na.action = na.omit)
  expect_identical(nobs(fit_na), 118L)
  expect_identical(as.integer(fit_na$na.action), c(3L, 8L))
  expect_error(site_dml(y ~ d | x1 + x2, data = na, learner = "linear", na.action = na.fail), "missing")
  expect_identical(nobs(site_dml(na, y = "y", d = "d", x = c("x1", "x2"), learner = "linear",
                                 n_folds = 3, seed = 5, na.action = "na.omit")), 118L)
  expect_error(site_dml(na, y = "y", d = "d", x = c("x1", "x2")), "x: column 'x1' has 2 missing")
  # Formula errors name the formula; a bare data frame needs x.
  expect_error(site_dml(y ~ d + x1, data = df), "formula: must have two parts")
  expect_error(site_dml(y ~ d | x1, data = df, bogus = 1), "unused argument\\(s\\) 'bogus'")
  expect_error(site_dml(df, y = "y", d = "d"), "x: name the covariate columns")
})

test_that("whole numbers need no L suffix; Python's wording is translated", {
  skip_if_no_hetmtl()
  df <- sim_plr(80, seed = 2)
  fit <- site_dml(df, y = "y", d = "d", x = covariates(df), n_folds = 2, seed = 1,
                  learner_args = list(n_estimators = 5, n_jobs = 2, max_features = 1))
  ml_l <- reticulate::py_get_item(fit$py$learners_, "ml_l")
  expect_identical(reticulate::py_to_r(ml_l$n_jobs), 2L)
  expect_identical(reticulate::py_to_r(ml_l$max_features), 1.0)
  err <- tryCatch(site_dml(df, y = "y", d = "d", x = covariates(df), n_folds = 2, seed = 1,
                           learner_args = list(n_estimators = -3)), error = conditionMessage)
  expect_false(grepl("InvalidParameterError|sklearn", err))
  expect_match(err, "n_estimators")
  tr <- hetmtl:::r_language
  expect_identical(tr("folds: repetition 0, fold 2 has indices outside 0..99"),
                   "folds: repetition 1, fold 3 has row numbers outside 1..100")
  expect_identical(tr("task: label 'z' (row 0) is not one of the layout's tasks ['a', 'b']"),
                   "task: label 'z' (row 1) is not one of the layout's tasks 'a', 'b'")
  expect_identical(tr("X: expected a 2-dimensional array"), "x: expected a 2-dimensional array")
  # A function without `x` names the argument its rows came in by.
  expect_identical(tr("X[1]: source 'mri' is partly observed", x_arg = "data"),
                   "data: source 'mri' is partly observed")
  expect_identical(tr("task: has 3 labels but X has 4 rows", x_arg = "newdata"),
                   "task: has 3 labels but newdata has 4 rows")
  expect_identical(vapply(c(0, 1, 2), hetmtl:::n_of, "", "site"), c("0 sites", "1 site", "2 sites"))
  expect_identical(hetmtl:::n_of(1, "fold summary", "fold summaries"), "1 fold summary")
  expect_match(tr("fit (see task_report_; negative_transfer='fallback')"), "see the fit's task_report;")
})

test_that("late fusion: method-aware print, one-site warning, vcov, nobs, predict, plots", {
  skip_if_no_hetmtl()
  est <- c(0.10, 0.12, 0.08, 0.11, 0.60)
  sums <- lapply(1:5, function(k) site_summary_from_estimate(c(effect = est[k]), se = 0.04, n = 400,
                                                             site = paste0("s", k)))
  eb <- late_fusion(sums, n_boot = 50, seed = 1)
  expect_identical(eb$method, "robust_eb")
  out <- capture.output(print(eb))
  expect_match(out[1], "robust empirical Bayes")
  expect_false(any(grepl("lambda", out)))
  for (m in c("blup", "fixed", "own")) {
    o <- capture.output(print(late_fusion(sums, method = m, inference = "none")))
    expect_false(any(grepl("lambda", o)), info = m)
  }
  pen <- late_fusion(sums, lam = 1, n_boot = 50, seed = 1)
  expect_match(capture.output(print(pen))[1], "lambda = 1 ")
  expect_warning(late_fusion(sums[1], inference = "none"), "summaries: a single site")
  expect_identical(nobs(pen), 2000)
  v <- vcov(pen)
  expect_identical(dim(v), c(5L, 5L))
  expect_identical(rownames(v), names(coef(pen)))
  expect_equal(sqrt(diag(v)), summary(pen)$fused_std_err, tolerance = 1e-10, ignore_attr = TRUE)
  expect_equal(unname(diag(vcov(pen, type = "site"))), rep(0.04^2, 5), tolerance = 1e-12)
  expect_error(vcov(late_fusion(sums, lam = 1, inference = "conditional")), "no joint covariance")
  p <- predict(pen, c("s5", "new"))
  expect_equal(unname(p), c(coef(pen)[["s5"]], unname(coef(pen, type = "center"))))
  pdf(NULL)
  on.exit(grDevices::dev.off())
  drawn <- plot(pen, xlim = c(-1, 1))
  expect_identical(nrow(drawn), 5L)
  path <- plot(pen, type = "path")
  expect_setequal(unique(path$site), c(paste0("s", 1:5), "center"))
  het <- heterogeneity(pen)
  expect_s3_class(het, "hetmtl_heterogeneity")
  expect_output(print(het), "Cochran's Q")
  expect_identical(rownames(confint(het)), het$table$model)
  expect_identical(names(coef(het)), het$table$model)
  expect_s3_class(summary(het), "data.frame")
  expect_identical(plot(het), het)
})

test_that("neural fits: formula, fitted, residuals, summary, coef error, task warning, threads", {
  skip_if_no_hetmtl()
  set.seed(9)
  df <- data.frame(task = rep(c("a", "b"), each = 40), x1 = rnorm(80), g = rep(c("u", "v"), 40))
  df$y <- df$x1 + (df$g == "v") + rnorm(80, sd = 0.3)
  args <- list(hidden = 4, latent_shared = 2, latent_specific = 1, lam_beta = 0.3,
               max_epochs = 5, patience = 3, negative_transfer = "off", seed = 2)
  a <- do.call(dual_encoder_mtl, c(list(y ~ x1 + g | task, data = df), args))
  b <- do.call(dual_encoder_mtl, c(list(df, y = "y", task = "task", x = c("x1", "g"), threads = 2), args))
  expect_equal(fitted(a), fitted(b), tolerance = 1e-10)
  expect_equal(fitted(a) + residuals(a), df$y, tolerance = 1e-12)
  # float32 networks: a batch of 2 rows and one of 80 round differently; compare absolutely
  expect_lt(max(abs(predict(a, df[c(3, 50), ]) - fitted(a)[c(3, 50)])), 1e-5)
  expect_identical(nobs(a), 80L)
  expect_error(coef(a), "coef: a dual-encoder fit is a neural network")
  s <- summary(a)
  expect_s3_class(s, "summary.hetmtl_dual_encoder")
  expect_output(print(s), "Dual-encoder multi-task regression: 2 tasks, 80 rows")
  expect_identical(b$settings$n_threads, 2L)
  expect_warning(do.call(dual_encoder_mtl, c(list(y ~ x1 | task, data = df[df$task == "a", ]), args)),
                 "task: every row belongs to task 'a'")
  aug <- augment(a, data = df)
  expect_identical(names(aug)[ncol(aug) - 0:1], c(".resid", ".fitted"))
  expect_identical(nrow(tidy(a)), 2L)
  expect_identical(glance(a)$nobs, 80L)
})

test_that("fused nuisances refuse a seed other than the grid summary's", {
  skip_if_no_hetmtl()
  set.seed(1)
  sites <- lapply(1:2, function(k) {
    x <- runif(120, 0, 10)
    d <- sin(x / 2) + rnorm(120)
    data.frame(x = x, d = d, y = 0.5 * d + cos(x / 3) + rnorm(120))
  })
  grid <- nuisance_grid(rbind(c(0, 10)), bandwidths = c(1, 2), n_points = 12)
  gs <- lapply(1:2, function(k) grid_summary(sites[[k]], y = "y", d = "d", x = "x", grid = grid,
                                              n_folds = 3, seed = 10 + k, site = paste0("S", k)))
  center <- nuisance_fusion(gs)
  fn <- fused_nuisance(center, "S1")
  expect_identical(fn$split$seed, 11L)
  fit <- site_dml(sites[[1]], y = "y", d = "d", x = "x", n_folds = 3, fused_nuisance = fn)
  expect_identical(fit$seed, 11L)
  expect_error(site_dml(sites[[1]], y = "y", d = "d", x = "x", n_folds = 3, fused_nuisance = fn,
                        seed = 12), "seed: 12 differs from the seed of the site's grid summary \\(11\\)")
  expect_error(site_dml(sites[[1]], y = "y", d = "d", x = "x", n_folds = 4, fused_nuisance = fn),
               "n_folds: 4 differs")
})

test_that("broom methods give broom's columns", {
  skip_if_no_hetmtl()
  df <- sim_plr(100, seed = 3)
  fit <- site_dml(y ~ d | x1 + x2 + x3, data = df, learner = "linear", n_folds = 2, seed = 1)
  td <- tidy(fit, conf.int = TRUE)
  expect_identical(names(td), c("term", "estimate", "std.error", "statistic", "p.value",
                                "conf.low", "conf.high"))
  expect_equal(td$conf.low, unname(confint(fit)[, 1]), tolerance = 1e-12)
  expect_identical(glance(fit)$nobs, 100L)
  lf <- late_fusion(list(a = fit, b = site_summary_from_estimate(c(d = 0.7), se = 0.1, n = 100)),
                    inference = "none")
  expect_identical(tidy(lf)$site, c("a", "b"))
  expect_identical(glance(lf)$method, "robust_eb")
  expect_identical(names(augment(lf))[6:7], c(".fitted", ".resid"))
  if (requireNamespace("broom", quietly = TRUE)) {
    expect_identical(broom::tidy(fit), tidy(fit))
  }
})

test_that("the Python check does not accept a bare hetmtl folder", {
  skip_if_no_hetmtl()
  expect_true(hetmtl_python_available())
  expect_true("hetmtl._core" %in% hetmtl:::HETMTL_PYTHON_NEEDS)
})
