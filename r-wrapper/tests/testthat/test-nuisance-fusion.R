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

test_that("a site's own disclosure policy and privacy budget reach Python from R", {
  skip_if_no_hetmtl()
  site <- sim_sites(1)[[1]]
  grid <- nuisance_grid(rbind(c(0, 10)), bandwidths = 1, n_points = 15)
  # A floor above the request's threshold: refused with the setting named.
  expect_error(grid_summary(site, y = "y", d = "d", x = "x", grid = grid, policy = list(min_count = 10)),
               "threshold: 5(\\.0)? is below the site.s disclosure floor min_count = 10")
  expect_error(grid_summary(site, y = "y", d = "d", x = "x", grid = grid, policy = list(min_rows = 2)),
               "policy: unknown setting")
  expect_error(grid_summary(site, y = "y", d = "d", x = "x", grid = grid, policy = 3), "^policy: ")
  budget <- list(privacy = list(epsilon = 1, delta = 1e-6, bounds = list(ml_l = c(-5, 5), ml_m = c(-4, 4)),
                                random_state = 1L))
  private <- grid_summary(site, y = "y", d = "d", x = "x", grid = grid, seed = 7, policy = budget)
  expect_equal(reticulate::py_to_r(private$py$privacy)$epsilon, 1)
  # A ledger allows one release, then refuses the next.
  ledger <- tempfile(fileext = ".json")
  on.exit(unlink(ledger))
  once <- list(ledger = ledger, max_releases = 1L)
  grid_summary(site, y = "y", d = "d", x = "x", grid = grid, policy = once)
  expect_error(grid_summary(site, y = "y", d = "d", x = "x", grid = grid, policy = once), "max_releases")
  # site_dml(): fold summaries the site's floors do not release are left out, with a warning.
  expect_warning(fit <- site_dml(site, y = "y", d = "d", x = "x", learner = "linear", n_folds = 3, seed = 1,
                                 policy = list(min_fold_rows = 1000)), "must be withheld")
  expect_identical(reticulate::py_len(fit$summary$py$folds), 0L)
  released <- site_summary_private(fit, epsilon = 2, regressor_bound = 4, outcome_bound = 6, seed = 1)
  expect_s3_class(released, "hetmtl_site_summary")
  expect_gt(sqrt(diag(vcov(released)))[[1]], fit$se[[1]])
  expect_error(site_summary_private(fit, epsilon = 0, regressor_bound = 4, outcome_bound = 6), "^epsilon: ")
})
