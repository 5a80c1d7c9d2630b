# Fits survive saveRDS(): the Python side's saved bytes ride along and are loaded when needed.

test_that("fits restored by readRDS() in a new R session give the same numbers", {
  skip_if_no_hetmtl()
  skip_if_not_installed("callr")
  df <- sim_plr(90, seed = 12)
  fit <- site_dml(y ~ d | x1 + x2 + x3, data = df, learner = "linear", n_folds = 3, seed = 2,
                  site = "A")
  lf <- late_fusion(list(A = fit, B = site_summary_from_estimate(c(d = 0.9), se = 0.1, n = 80)),
                    lam = 0.5, n_boot = 30, seed = 1)
  set.seed(3)
  tasks <- data.frame(task = rep(c("a", "b"), each = 30), x1 = rnorm(60))
  tasks$y <- tasks$x1 + rnorm(60, sd = 0.3)
  dual <- dual_encoder_mtl(y ~ x1 | task, data = tasks, hidden = 4, latent_shared = 2,
                           latent_specific = 1, lam_beta = 0.3, max_epochs = 5,
                           negative_transfer = "off", seed = 1)
  rds <- tempfile(fileext = ".rds")
  on.exit(unlink(rds))
  saveRDS(list(fit = fit, lf = lf, dual = dual, tasks = tasks), rds)
  back <- readRDS(rds)
  expect_true(reticulate::py_is_null_xptr(back$fit$py))
  expect_identical(summary(back$fit), summary(fit))
  expect_identical(summary(back$lf), summary(lf))
  expect_identical(predict(back$dual, tasks[1:4, ]), predict(dual, tasks[1:4, ]))
  other <- callr::r(function(path) {
    library(hetmtl)
    x <- readRDS(path)
    list(print = utils::capture.output(print(x$lf)), summary = summary(x$fit),
         ci = stats::confint(x$lf), pred = stats::predict(x$dual, x$tasks[1:4, ]))
  }, args = list(rds), libpath = .libPaths())
  expect_identical(other$summary, summary(fit))
  expect_identical(other$ci, confint(lf))
  expect_identical(other$print, utils::capture.output(print(lf)))
  expect_equal(other$pred, predict(dual, tasks[1:4, ]), tolerance = 1e-12)
})
