test_that("site_dml with linear learners equals SiteDML to rounding", {
  skip_if_no_hetmtl()
  df <- sim_plr(150, seed = 11)
  fit <- site_dml(df, y = "y", d = "d", x = c("x1", "x2", "x3"), learner = "linear",
                  n_folds = 3, seed = 11, site = "A")
  lm <- linear_py_learners()
  ref <- py_fusion("site_dml")$SiteDML(ml_l = lm$reg, ml_m = lm$reg, n_folds = 3L,
                                        random_state = 11L, site = "A")
  ref <- ref$fit(py_df(df), y = "y", d = "d", x = list("x1", "x2", "x3"))
  expect_equal(unname(coef(fit)), py_vec(ref$coef_), tolerance = 1e-12)
  expect_equal(unname(fit$se), py_vec(ref$se_), tolerance = 1e-12)
  ci_ref <- py_matrix(ref$confint(level = 0.9)$to_numpy())
  expect_equal(unname(confint(fit, level = 0.9)), ci_ref, tolerance = 1e-12)
  # Oracle independent of the Python package: the PLR estimate is the regression of the
  # cross-fitted outcome residuals on the treatment residuals, fold by fold.
  folds <- lapply(reticulate::py_to_r(ref$folds_)[[1]], function(i) as.integer(i) + 1L)
  res_y <- res_d <- numeric(nrow(df))
  for (test in folds) {
    train <- setdiff(seq_len(nrow(df)), test)
    res_y[test] <- df$y[test] - predict(stats::lm(y ~ x1 + x2 + x3, df[train, ]), df[test, ])
    res_d[test] <- df$d[test] - predict(stats::lm(d ~ x1 + x2 + x3, df[train, ]), df[test, ])
  }
  expect_equal(unname(coef(fit)), sum(res_d * res_y) / sum(res_d^2), tolerance = 1e-10)
})

test_that("the default random forest reproduces SiteDML(random_state = seed)", {
  skip_if_no_hetmtl()
  df <- sim_plr(100, seed = 5)
  fit <- site_dml(df, y = "y", d = "d", x = covariates(df), n_folds = 2, seed = 9)
  ref <- py_fusion("site_dml")$SiteDML(n_folds = 2L, random_state = 9L)$fit(py_df(df), y = "y", d = "d")
  expect_equal(unname(coef(fit)), py_vec(ref$coef_), tolerance = 1e-12)
  expect_equal(unname(fit$se), py_vec(ref$se_), tolerance = 1e-12)
  expect_identical(fit$learner, "rf")
  # learner_args reach the estimators; the seeds still come from `seed`.
  fit20 <- site_dml(df, y = "y", d = "d", x = covariates(df), n_folds = 2, seed = 9, learner_args = list(n_estimators = 20))
  learners <- fit20$py$learners_
  expect_identical(reticulate::py_to_r(reticulate::py_get_item(learners, "ml_l")$n_estimators), 20L)
  expect_identical(reticulate::py_to_r(reticulate::py_get_item(learners, "ml_m")$random_state),
                   reticulate::py_to_r(reticulate::py_get_item(ref$learners_, "ml_m")$random_state))
})

test_that("integer and logical columns give the same fit as doubles", {
  skip_if_no_hetmtl()
  df <- sim_plr(120, seed = 2)
  df$x3 <- as.integer(round(10 * df$x3))
  df_int <- df
  df_dbl <- df
  df_dbl$x3 <- as.double(df_dbl$x3)
  a <- site_dml(df_int, y = "y", d = "d", x = covariates(df), learner = "linear", n_folds = 3, seed = 1)
  b <- site_dml(df_dbl, y = "y", d = "d", x = covariates(df), learner = "linear", n_folds = 3, seed = 1)
  expect_identical(coef(a), coef(b))
  expect_identical(a$se, b$se)
})

test_that("explicit folds: labels and row lists agree with Python's 0-based folds", {
  skip_if_no_hetmtl()
  df <- sim_plr(60, seed = 3)
  labels <- rep(1:3, length.out = 60)
  fit_lab <- site_dml(df, y = "y", d = "d", x = covariates(df), learner = "linear", folds = labels)
  rows <- split(seq_len(60), labels)
  fit_rows <- site_dml(df, y = "y", d = "d", x = covariates(df), learner = "linear", folds = unname(rows))
  expect_identical(coef(fit_lab), coef(fit_rows))
  expect_identical(fit_lab$n_folds, 3L)
  lm <- linear_py_learners()
  py_rows <- lapply(unname(rows), function(r) reticulate::np_array(r - 1L, dtype = "int64"))
  ref <- py_fusion("site_dml")$SiteDML(ml_l = lm$reg, ml_m = lm$reg)$fit(
    py_df(df), y = "y", d = "d", folds = reticulate::r_to_py(py_rows))
  expect_equal(unname(coef(fit_lab)), py_vec(ref$coef_), tolerance = 1e-12)
  # Two repetitions as a list of lists.
  fit_rep <- site_dml(df, y = "y", d = "d", x = covariates(df), learner = "linear",
                      folds = list(unname(rows), unname(split(seq_len(60), rep(1:3, each = 20)))))
  expect_identical(fit_rep$n_rep, 2L)
  expect_error(site_dml(df, y = "y", d = "d", x = covariates(df), learner = "linear",
                        folds = list(unname(rows), unname(split(seq_len(60), rep(1:2, 30))))),
               "folds: repetition 2 has 2 folds, repetition 1 has 3")
})

test_that("irm with a binary integer treatment matches SiteDML; a Python learner object works", {
  skip_if_no_hetmtl()
  df <- sim_irm(160, seed = 8)
  expect_type(df$d, "integer")
  fit <- site_dml(df, y = "y", d = "d", x = covariates(df), model = "irm",
                  learner = list(ml_g = "linear", ml_m = "linear"), n_folds = 3, seed = 4)
  lm <- linear_py_learners()
  ref <- py_fusion("site_dml")$SiteDML(model = "irm", ml_g = lm$reg, ml_m = lm$clf, n_folds = 3L,
                                        random_state = 4L)$fit(py_df(df), y = "y", d = "d")
  expect_equal(unname(coef(fit)), py_vec(ref$coef_), tolerance = 1e-10)
  expect_equal(unname(fit$se), py_vec(ref$se_), tolerance = 1e-10)

  fit_obj <- site_dml(df, y = "y", d = "d", x = covariates(df), model = "irm",
                      learner = list(ml_g = lm$reg, ml_m = lm$clf), n_folds = 3, seed = 4)
  expect_identical(coef(fit_obj), coef(fit))
  expect_identical(fit_obj$learner, "ml_g = LinearRegression, ml_m = LogisticRegression")
  expect_identical(fit$learner, "ml_g = linear, ml_m = linear")
  expect_error(site_dml(df, y = "y", d = "d", x = covariates(df), model = "irm", learner = list(ml_g = lm$reg, ml_m = lm$clf),
                        learner_args = list(n_estimators = 5)),
               "learner_args: only used by named learners")
})

test_that("clusters and cate_linear bases pass through", {
  skip_if_no_hetmtl()
  df <- sim_irm(160, seed = 9)
  df$clinic <- factor(rep(letters[1:8], each = 20))
  fit <- site_dml(df, y = "y", d = "d", x = c("x1", "x2"), cluster = "clinic", learner = "linear",
                  n_folds = 4, seed = 1)
  expect_identical(fit$n_clusters, 8L)
  expect_output(print(fit), "in 8 clusters")
  cate <- site_dml(df, y = "y", d = "d", x = c("x1", "x2"), model = "cate_linear", basis = "x1",
                   learner = "linear", n_folds = 3, seed = 1)
  expect_identical(names(coef(cate)), c("intercept", "x1"))
  expect_identical(dim(vcov(cate)), c(2L, 2L))
})

test_that("S3 methods return the documented shapes", {
  skip_if_no_hetmtl()
  df <- sim_plr(80, seed = 6)
  df$d2 <- df$x2 + rnorm(80)
  fit <- site_dml(df, y = "y", d = c("d", "d2"), x = c("x1", "x2", "x3"), learner = "linear",
                  n_folds = 2, n_rep = 2, seed = 3)
  s <- summary(fit)
  expect_s3_class(s, "data.frame")
  expect_identical(names(s), c("term", "estimate", "std_err", "z", "p_value", "ci_lower", "ci_upper"))
  expect_identical(s$term, c("d", "d2"))
  expect_equal(s$estimate, unname(coef(fit)), tolerance = 0)
  expect_equal(s$z, s$estimate / s$std_err, tolerance = 1e-14)
  expect_equal(s$p_value, 2 * pnorm(-abs(s$z)), tolerance = 1e-12)
  ci <- confint(fit)
  expect_identical(dim(ci), c(2L, 2L))
  expect_identical(colnames(ci), c("2.5 %", "97.5 %"))
  expect_equal(unname(ci[, 1]), s$ci_lower, tolerance = 0)
  expect_identical(rownames(confint(fit, "d2")), "d2")
  expect_identical(dim(confint(fit, 1)), c(1L, 2L))
  expect_identical(colnames(confint(fit, level = 0.9)), c("5 %", "95 %"))
  expect_identical(dim(vcov(fit)), c(2L, 2L))
  expect_identical(nobs(fit), 80L)
  expect_identical(fit$n_rep, 2L)
  expect_output(print(fit), "Site DML at site 'site': model 'plr', n = 80, 2 folds x 2 repetition")
  expect_s3_class(site_summary(fit), "hetmtl_site_summary")
  path <- tempfile(fileext = ".json")
  on.exit(unlink(path))
  write_site_summary(fit, path)
  expect_equal(coef(read_site_summary(path)), coef(fit), tolerance = 0)
})

test_that("input errors name the argument", {
  skip_if_no_hetmtl()
  df <- sim_plr(40, seed = 1)
  df$g <- factor(rep(c("a", "b"), 20))
  expect_error(site_dml(df, y = "outcome", d = "d", x = covariates(df)), "y: column\\(s\\) 'outcome' not found in data")
  expect_error(site_dml(df, y = "y", d = c("d", "dd")), "d: column\\(s\\) 'dd' not found")
  expect_error(site_dml(df, y = "y", d = "d", x = "z"), "x: column\\(s\\) 'z' not found")
  expect_identical(site_dml(df, y = "y", d = "d", x = c("x1", "g"), learner = "linear", n_folds = 2,
                            seed = 1)$x, c("x1", "gb"))
  expect_error(site_dml(df, y = "y", d = "d"), "x: name the covariate columns")
  expect_error(site_dml(df, y = "y", d = "d", x = c("x1", "d")), "x: must not contain")
  expect_error(site_dml(df, y = c("y", "d"), d = "d", x = covariates(df)), "y: must be a single column name")
  expect_error(site_dml(df, y = "y", d = "y"), "d: must not contain the outcome")
  df_na <- df
  df_na$y[3] <- NA
  expect_error(site_dml(df_na, y = "y", d = "d", x = "x1"), "y: column 'y' has 1 missing value")
  expect_error(site_dml(as.matrix(df[1:3]), y = "y", d = "d", x = covariates(df)), "data: must be a data frame")
  expect_error(site_dml(df, y = "y", d = "d", model = "ols"), "model: must be one of 'plr', 'irm', 'cate_linear'")
  expect_error(site_dml(df, y = "y", d = "d", x = "x1", learner = "svm"), "learner: must be one of 'rf'")
  expect_error(site_dml(df, y = "y", d = "d", x = "x1", learner = list(ml_g = "rf", ml_m = "rf")),
               "learner: role\\(s\\) 'ml_g' not used by model 'plr'")
  expect_error(site_dml(df, y = "y", d = "d", x = "x1", learner = list(ml_l = "rf")),
               "learner: no learner given for role\\(s\\) 'ml_m'")
  expect_error(site_dml(df, y = "y", d = "d", x = "x1", learner_args = list(trees = 5)),
               "learner_args: unknown parameter\\(s\\) 'trees' of RandomForestRegressor")
  expect_error(site_dml(df, y = "y", d = "d", x = "x1", n_folds = 1), "n_folds: must be a whole number >= 2")
  expect_error(site_dml(df, y = "y", d = "d", x = "x1", n_folds = 2.5), "n_folds: must be a whole number")
  expect_error(site_dml(df, y = "y", d = "d", x = "x1", seed = -1), "seed: must be a whole number >= 0")
  expect_error(site_dml(df, y = "y", d = "d", x = "x1", basis = "x2"), "basis: only used by model 'cate_linear'")
  expect_error(site_dml(df, y = "y", d = "d", x = "x1", folds = list(1:20, 21:41)),
               "folds: repetition 1, fold 2 has row numbers outside 1..40")
  expect_error(site_dml(df, y = "y", d = "d", x = "x1", folds = 1:3), "folds: a vector of fold labels needs one label per row")
  # Errors raised in Python arrive without the Python exception decoration.
  err <- tryCatch(site_dml(df, y = "y", d = "d", x = "x1", n_folds = 30), error = identity)
  expect_identical(conditionMessage(err), "n_folds: 30 folds need at least 60 rows (2 per fold), got 40")
  expect_error(site_dml(df, y = "y", d = "d", x = "x1", model = "irm"),
               "d: model 'irm' needs a binary treatment coded 0/1")
})

test_that("dml_learner builds the named scikit-learn estimators", {
  skip_if_no_hetmtl()
  cls <- function(est) reticulate::py_to_r(reticulate::py_get_attr(est, "__class__")$`__name__`)
  expect_identical(cls(dml_learner("rf")), "RandomForestRegressor")
  expect_identical(cls(dml_learner("gbm", "classifier", seed = 1)), "GradientBoostingClassifier")
  expect_identical(cls(dml_learner("linear", "classifier")), "LogisticRegression")
  expect_identical(cls(dml_learner("lasso")), "Pipeline")
  rf <- dml_learner("rf", seed = 3, n_estimators = 7)
  expect_identical(reticulate::py_to_r(rf$n_estimators), 7L)
  expect_identical(reticulate::py_to_r(rf$random_state), 3L)
  expect_error(dml_learner("rf", type = "ranker"), "type: must be one of")
  expect_error(dml_learner("rf", 5), "type: must be one of")
})
