# Nuisance fusion from R equals the same steps in Python on the same data.

sim_sites <- function(K = 3, seed = 1) {
  set.seed(seed)
  lapply(seq_len(K), function(k) {
    n <- 150 + 50 * k
    x <- runif(n, 0, 10)
    d <- sin(x / 2) + rnorm(n)
    y <- 0.5 * d + cos(x / 3) + 0.2 * k + rnorm(n)
    data.frame(y = y, d = d, x = x)
  })
}

test_that("grid summaries, fusion and site_dml with fused nuisances match Python", {
  skip_if_no_hetmtl()
  sites <- sim_sites()
  grid <- nuisance_grid(rbind(c(0, 10)), bandwidths = c(0.8, 1.6), n_points = 15)
  expect_s3_class(grid, "hetmtl_nuisance_grid")
  dir <- tempfile()
  dir.create(dir)
  on.exit(unlink(dir, recursive = TRUE))
  summaries <- lapply(seq_along(sites), function(k) {
    grid_summary(sites[[k]], y = "y", d = "d", x = "x", grid = grid, seed = 7, site = paste0("S", k),
                 path = file.path(dir, paste0("S", k, ".grid.json")))
  })
  fit <- nuisance_fusion(summaries, out_dir = dir)
  expect_identical(fit$sites, c("S1", "S2", "S3"))
  expect_true(all(file.exists(file.path(dir, paste0("S", 1:3, ".fused.json")))))
  ours <- site_dml(sites[[1]], y = "y", d = "d", x = "x", seed = 7, site = "S1",
                   fused_nuisance = file.path(dir, "S1.fused.json"))
  expect_identical(ours$learner, "fused nuisances")

  # Python reference: the same calls on the same data.
  gsm <- py_fusion("grid_summary")
  kg <- py_fusion("kernel_grid")
  nfm <- py_fusion("nuisance_fusion")
  sdm <- py_fusion("site_dml")
  np <- reticulate::import("numpy", convert = FALSE)
  pgrid <- kg$KernelGrid$from_ranges(np$array(list(c(0, 10))), 15L)
  ref <- lapply(seq_along(sites), function(k) {
    gsm$site_grid_summary(py_df(sites[[k]]), y = "y", d = "d", x = list("x"), grid = pgrid,
                          bandwidths = np$array(c(0.8, 1.6)), model = "plr", n_folds = 5L,
                          random_state = 7L, site = paste0("S", k))
  })
  nf <- nfm$NuisanceFusion()$fit(lapply(ref, function(r) reticulate::py_get_item(r, 0L)))
  folds <- reticulate::py_get_item(ref[[1]], 1L)
  frame <- py_df(sites[[1]])
  preds <- nf$result("S1")$predictions(reticulate::py_get_item(frame, list("x"))$to_numpy(), folds)
  est <- sdm$SiteDML(n_folds = 5L, random_state = 7L)$fit(frame, y = "y", d = "d", x = list("x"),
                                                         folds = list(folds), predictions = preds)
  expect_equal(unname(coef(ours)), py_vec(est$coef_), tolerance = 1e-10)
  expect_equal(unname(ours$se), py_vec(est$se_), tolerance = 1e-10)
  expect_equal(unname(fit$lambda[["ml_m"]]), py_vec(reticulate::py_get_item(nf$lam_, "ml_m")),
               tolerance = 1e-10)
})

test_that("bad input is reported with the argument's name", {
  skip_if_no_hetmtl()
  sites <- sim_sites(K = 1)
  expect_error(nuisance_grid(rbind(c(0, 10)), bandwidths = -1), "^bandwidths: ")
  expect_error(nuisance_grid(c(0, 10, 20), bandwidths = 1), "^ranges: ")
  grid <- nuisance_grid(rbind(c(0, 5)), bandwidths = 1)
  expect_error(grid_summary(sites[[1]], y = "y", d = "d", x = "x", grid = grid),
               "outside the grid's range")
  expect_error(grid_summary(sites[[1]], y = "y", d = "d", x = c("x", "y"), grid = grid), "^x: ")
  expect_error(site_dml(sites[[1]], y = "y", d = "d", x = "x", fused_nuisance = "nope.json"),
               "^fused_nuisance: ")
  expect_error(nuisance_fusion(list()), "^summaries: ")
})
