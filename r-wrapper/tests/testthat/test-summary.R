test_that("site_summary_from_estimate matches SiteSummary.from_estimate", {
  skip_if_no_hetmtl()
  s <- site_summary_from_estimate(c(effect = 0.31), se = 0.07, n = 250, site = "A")
  ref <- py_fusion("summary")$SiteSummary$from_estimate(0.31, se = 0.07, n = 250, site = "A",
                                                        coef_names = list("effect"))
  expect_s3_class(s, "hetmtl_site_summary")
  expect_identical(s$site, "A")
  expect_identical(s$model, "estimate")
  expect_identical(s$n, 250)
  expect_identical(coef(s), c(effect = 0.31))
  expect_equal(unname(s$se), 0.07, tolerance = 1e-14)
  expect_equal(py_matrix(s$py$J), py_matrix(ref$J), tolerance = 1e-14)
  expect_equal(py_matrix(s$py$Omega), py_matrix(ref$Omega), tolerance = 1e-14)
  expect_identical(s$n_folds, 0L)
})

test_that("without n the effective size is 1 / mean(se^2); cov gives a full covariance", {
  skip_if_no_hetmtl()
  s <- site_summary_from_estimate(c(a = 1, b = 2), se = c(0.1, 0.2))
  expect_equal(s$n, 1 / mean(c(0.1, 0.2)^2), tolerance = 1e-14)
  expect_equal(unname(diag(vcov(s))), c(0.01, 0.04), tolerance = 1e-14)

  V <- matrix(c(0.04, 0.01, 0.01, 0.09), 2)
  s2 <- site_summary_from_estimate(c(a = 1, b = 2), cov = V, n = 100)
  expect_equal(unname(vcov(s2)), V, tolerance = 1e-14)
  expect_identical(rownames(vcov(s2)), c("a", "b"))
})

test_that("write_site_summary and read_site_summary round-trip, readable by Python", {
  skip_if_no_hetmtl()
  s <- site_summary_from_estimate(c(d = -0.4), se = 0.11, n = 80, site = "north")
  path <- tempfile(fileext = ".json")
  on.exit(unlink(path))
  expect_identical(write_site_summary(s, path), path)
  back <- read_site_summary(path)
  expect_identical(coef(back), coef(s))
  expect_identical(back$site, "north")
  expect_identical(back$n, 80)
  py_back <- py_fusion("summary")$SiteSummary$from_json(path)
  expect_equal(py_vec(py_back$theta), -0.4, tolerance = 0)
  expect_equal(py_matrix(py_back$Omega), py_matrix(s$py$Omega), tolerance = 0)

  skip_if_not_installed("jsonlite")
  js <- jsonlite::fromJSON(path)
  expect_identical(js$schema, "hetmtl.site_summary")
  expect_setequal(names(js), c("schema", "schema_version", "site", "model", "coef_names", "n",
                               "theta", "J", "Omega", "folds", "metadata"))
})

test_that("a summary written by Python is read with its fold summaries", {
  skip_if_no_hetmtl()
  df <- sim_plr(90, seed = 4)
  lm <- linear_py_learners()
  fit <- py_fusion("site_dml")$SiteDML(ml_l = lm$reg, ml_m = lm$reg, n_folds = 3L,
                                        random_state = 2L, site = "py")$fit(py_df(df), y = "y", d = "d")
  path <- tempfile(fileext = ".json")
  on.exit(unlink(path))
  fit$summary_$to_json(path)
  s <- read_site_summary(path)
  expect_identical(s$n_folds, 3L)
  expect_identical(s$site, "py")
  expect_identical(s$model, "plr")
  expect_equal(unname(coef(s)), py_vec(fit$coef_), tolerance = 1e-15)
  expect_equal(unname(s$se), py_vec(fit$se_), tolerance = 1e-12)
  expect_output(print(s), "Site summary 'py' \\(model 'plr', n = 90, 3 fold summaries\\)")
})

test_that("bad summaries and paths give errors naming the argument", {
  skip_if_no_hetmtl()
  expect_error(site_summary_from_estimate(0.1, se = -1), "se: standard errors must be positive")
  expect_error(site_summary_from_estimate(c(0.1, 0.2), se = 1), "se: must be 2 finite number")
  expect_error(site_summary_from_estimate(0.1), "se: give exactly one of se or cov")
  expect_error(site_summary_from_estimate(0.1, se = 1, cov = 1), "se: give exactly one")
  expect_error(site_summary_from_estimate("a", se = 1), "estimate: must be a non-empty numeric")
  expect_error(site_summary_from_estimate(NA_real_, se = 1), "estimate:")
  expect_error(site_summary_from_estimate(0.1, se = 1, n = 0), "n: must be a finite number > 0")
  expect_error(site_summary_from_estimate(0.1, se = 1, site = ""), "site: must be a single non-empty")
  expect_error(site_summary_from_estimate(c(0, 0), cov = diag(c(1, 0))), "cov: singular")
  expect_error(read_site_summary(file.path(tempdir(), "no-such-file.json")),
               "path: file .* does not exist")
  s <- site_summary_from_estimate(0.1, se = 1)
  expect_error(write_site_summary(s, file.path(tempdir(), "no-such-dir", "s.json")),
               "path: directory .* does not exist")
  expect_error(write_site_summary(list(), tempfile()), "x: expected a site summary")
  expect_error(site_summary(1), "fit: expected a site_dml\\(\\) fit")

  # A file that carries more than a summary is refused.
  path <- tempfile(fileext = ".json")
  on.exit(unlink(path))
  write_site_summary(s, path)
  txt <- readLines(path, warn = FALSE)
  txt <- sub("\\{", "{\"rows\": [[1, 2, 3]], ", paste(txt, collapse = "\n"))
  writeLines(txt, path)
  expect_error(read_site_summary(path), "summary: unknown field\\(s\\) 'rows';")
  writeLines("not json", path)
  expect_error(read_site_summary(path), "is not valid JSON")
})

test_that("site summaries and fits survive saveRDS()", {
  skip_if_no_hetmtl()
  fit <- site_dml(sim_plr(60, seed = 7), y = "y", d = "d", x = c("x1", "x2", "x3"), learner = "linear", n_folds = 2,
                  seed = 1, site = "kept")
  other <- site_summary_from_estimate(c(d = 0.9), se = 0.2, n = 100, site = "other")
  rds <- tempfile(fileext = ".rds")
  on.exit(unlink(rds))
  saveRDS(list(fit = fit, other = other), rds)
  back <- readRDS(rds)
  expect_true(reticulate::py_is_null_xptr(back$other$py))
  expect_identical(coef(back$other), coef(other))
  # The restored summaries fuse exactly as the originals do.
  fused_back <- late_fusion(list(site_summary(back$fit), back$other), lam = 0.1, inference = "none")
  fused <- late_fusion(list(site_summary(fit), other), lam = 0.1, inference = "none")
  expect_identical(coef(fused_back), coef(fused))
  json <- tempfile(fileext = ".json")
  on.exit(unlink(json), add = TRUE)
  write_site_summary(back$fit, json)
  expect_identical(read_site_summary(json)$n_folds, 2L)
  expect_identical(summary(back$fit), summary(fit))
  gone <- fit
  gone$serialized <- NULL
  gone$py <- back$fit$py
  expect_error(summary(gone), "summary: the Python object of this fit is gone")
})
