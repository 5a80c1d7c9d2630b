# dual_encoder_mtl(): same numbers as the Python class for a seed, predict(), errors.

sim_tasks <- function(seed = 1) {
  set.seed(seed)
  n <- 40
  task <- rep(c("a", "b", "c"), each = n)
  x1 <- rnorm(3 * n)
  x2 <- rnorm(3 * n)
  slope <- c(a = 1, b = 1.2, c = -0.5)[task]
  y <- tanh(x1) + slope * x2 + 0.1 * rnorm(3 * n)
  data.frame(y = y, school = task, x1 = x1, x2 = x2, stringsAsFactors = FALSE)
}

FAST <- list(latent_shared = 3, latent_specific = 2, hidden = 8, max_epochs = 10, patience = 5,
             negative_transfer = "off")

test_that("dual_encoder_mtl matches the Python class for a seed", {
  skip_if_no_hetmtl()
  df <- sim_tasks()
  fit <- do.call(dual_encoder_mtl, c(list(df, y = "y", task = "school", x = c("x1", "x2"), seed = 3), FAST))
  expect_s3_class(fit, "hetmtl_dual_encoder")
  pred <- predict(fit, df)
  expect_length(pred, nrow(df))
  dual <- reticulate::import("hetmtl.dual", convert = FALSE)
  np <- reticulate::import("numpy", convert = FALSE)
  ref <- dual$DualEncoderMTL(latent_shared = 3L, latent_specific = 2L, hidden = reticulate::tuple(8L),
                             max_epochs = 10L, patience = 5L, negative_transfer = "off",
                             random_state = 3L)
  X <- np$array(as.matrix(df[, c("x1", "x2")]), dtype = "float64")
  ref$fit(X, np$array(df$y, dtype = "float64"), np$array(df$school))
  expect_equal(pred, py_vec(ref$predict(X, np$array(df$school))), tolerance = 1e-10)
  expect_equal(fit$tasks, c("a", "b", "c"))
  expect_equal(dim(fit$head_distances), c(3L, 3L))
  expect_equal(unname(diag(fit$head_distances)), rep(0, 3))
  expect_equal(fit$task_report$n_train + fit$task_report$n_val, rep(40, 3))
  expect_output(print(fit), "3 tasks")
  # predictions for a subset of rows, in another order, are the same numbers
  idx <- c(5, 90, 41)
  expect_equal(predict(fit, df[idx, ]), pred[idx], tolerance = 1e-6)
})

test_that("dual_encoder_mtl reports bad input clearly", {
  skip_if_no_hetmtl()
  df <- sim_tasks()
  fit <- do.call(dual_encoder_mtl, c(list(df, y = "y", task = "school", x = c("x1", "x2"), seed = 1), FAST))
  new <- df[1:3, ]
  new$school[2] <- "zz"
  expect_error(predict(fit, new), "task: unknown task label")
  expect_error(predict(fit, df[, c("x1", "school")]), "newdata: lacks column")
  expect_error(dual_encoder_mtl(df, y = "y", task = "nope"), "task: column\\(s\\) 'nope' not found")
  expect_error(dual_encoder_mtl(df, y = "y", task = "school", x = c("x1", "x2"), penalty = "l1"), "penalty: must be one of")
  expect_error(dual_encoder_mtl(df, y = "y", task = "school", x = c("x1", "x2"), lam_beta = "cv"), "lam_beta: must be one of")
  expect_error(dual_encoder_mtl(df, y = "y", task = "school", x = c("x1", "x2"), lam_beta = -1), "lam_beta: must be a finite")
  expect_error(dual_encoder_mtl(df, y = "y", task = "school", x = c("x1", "x2"), lam_beta_grid = c(0, -1)),
               "lam_beta_grid: must be a vector of finite numbers >= 0")
  expect_error(dual_encoder_mtl(df, y = "y", task = "school", x = c("x1", "x2"), lam_beta_grid = numeric(0)),
               "lam_beta_grid: must be a vector")
  expect_error(dual_encoder_mtl(df, y = "y", task = "school", x = c("x1", "x2"), head_ridge = NA), "head_ridge: must be a finite")
  expect_error(dual_encoder_mtl(df, y = "y", task = "school", x = c("x1", "x2"), ensemble_size = 0),
               "ensemble_size: must be a whole number >= 1")
  bad <- df
  bad$x1[3] <- NA
  expect_error(dual_encoder_mtl(bad, y = "y", task = "school", x = c("x1", "x2")), "x: column 'x1' has 1 missing")
  small <- df[c(1:2, 41:120), ]
  expect_error(do.call(dual_encoder_mtl, c(list(small, y = "y", task = "school", x = c("x1", "x2")), FAST)),
               "task: task 'a' has 2 row")
})

test_that("dual_encoder_mtl passes the lam_beta grid and the head ridge to Python", {
  skip_if_no_hetmtl()
  df <- sim_tasks(2)
  args <- c(list(df, y = "y", task = "school", x = c("x1", "x2"), seed = 4, lam_beta_grid = c(0.1, 2), head_ridge = 8),
            FAST)
  fit <- do.call(dual_encoder_mtl, args)
  expect_equal(reticulate::py_to_r(fit$py$lam_beta_grid), list(0.1, 2))
  expect_equal(reticulate::py_to_r(fit$py$head_ridge), 8)
  # the chosen value comes from the grid given
  expect_true(reticulate::py_to_r(fit$py$lam_beta_) %in% c(0.1, 2))
})

test_that("the task report carries every column of the Python task_report_", {
  skip_if_no_hetmtl()
  df <- sim_tasks(3)
  args <- modifyList(FAST, list(negative_transfer = "fallback"))
  fit <- do.call(dual_encoder_mtl, c(list(df, y = "y", task = "school", x = c("x1", "x2"), seed = 5), args))
  py_report <- fit$py$task_report_
  py_cols <- reticulate::py_to_r(py_report$columns$tolist())
  rep <- fit$task_report
  expect_identical(names(rep), c("task", unlist(py_cols)))
  for (col in c("specific_used", "specific_gain", "specific_p_value", "transfer_difference",
                "transfer_p_value", "transfer_p_adjusted", "negative_transfer", "val_mse")) {
    expect_equal(rep[[col]], unlist(reticulate::py_to_r(py_report[[col]]$tolist())), info = col)
  }
  expect_type(rep$specific_used, "logical")
  expect_true(all(rep$transfer_p_adjusted >= rep$transfer_p_value))
  s <- summary(fit)
  expect_identical(names(s$tasks), c(names(rep), "train_mse"))
  expect_output(print(s), "Tasks using their specific encoder: [0-3] of 3")
  expect_output(print(s), "specific_gain +specific_p_value")
  expect_output(print(fit), "specific_used")
  # without the negative-transfer test its columns are NA, and the summary leaves them out
  off <- do.call(dual_encoder_mtl, c(list(df, y = "y", task = "school", x = c("x1", "x2"), seed = 5), FAST))
  expect_true(all(is.na(off$task_report$transfer_p_value)))
  expect_false(any(grepl("transfer_p_value", capture.output(print(summary(off))))))
})

test_that("numeric task labels keep their numeric order, as in Python", {
  skip_if_no_hetmtl()
  set.seed(4)
  df <- data.frame(grp = rep(1:12, each = 15), x1 = rnorm(180))
  df$y <- df$x1 * (1 + df$grp / 12) + rnorm(180, sd = 0.2)
  fit <- do.call(dual_encoder_mtl, c(list(df, y = "y", task = "grp", x = "x1", seed = 2), FAST))
  expect_identical(fit$tasks, as.character(1:12))
  expect_identical(fit$task_report$task, as.character(1:12))
  expect_identical(rownames(fit$head_distances), as.character(1:12))
  printed <- capture.output(print(fit))
  rows <- trimws(printed[grepl("^ +[0-9]+ ", printed)])
  expect_identical(sub(" .*", "", rows), as.character(1:12))
  # the same numbers as Python given the integer labels
  dual <- reticulate::import("hetmtl.dual", convert = FALSE)
  np <- reticulate::import("numpy", convert = FALSE)
  ref <- dual$DualEncoderMTL(latent_shared = 3L, latent_specific = 2L, hidden = reticulate::tuple(8L),
                             max_epochs = 10L, patience = 5L, negative_transfer = "off",
                             random_state = 2L)
  X <- np$array(as.matrix(df["x1"]), dtype = "float64")
  labels <- np$array(df$grp, dtype = "int64")
  ref$fit(X, np$array(df$y, dtype = "float64"), labels)
  expect_equal(fitted(fit), py_vec(ref$predict(X, labels)), tolerance = 1e-10)
  expect_equal(summary(fit)$tasks$train_mse,
               unname(tapply(residuals(fit)^2, df$grp, mean)), tolerance = 1e-12)
  # the Python fit saved with the R object keeps its numeric labels
  rds <- tempfile(fileext = ".rds")
  on.exit(unlink(rds))
  saveRDS(fit, rds)
  expect_equal(predict(readRDS(rds), df[c(1, 100), ]), fitted(fit)[c(1, 100)], tolerance = 1e-6)
  # new rows' labels are read as numbers; one that is no number is an unknown task
  new <- df[c(1, 100), ]
  new$grp <- as.character(new$grp)
  expect_equal(predict(fit, new), predict(fit, df[c(1, 100), ]), tolerance = 1e-12)
  new$grp[2] <- "zz"
  expect_error(predict(fit, new), "task: unknown task label\\(s\\) 'zz'; fitted tasks are 1, 2")
})

test_that("predict() names newdata for missing and non-numeric covariates", {
  skip_if_no_hetmtl()
  df <- sim_tasks()
  fit <- do.call(dual_encoder_mtl, c(list(df, y = "y", task = "school", x = c("x1", "x2"), seed = 1), FAST))
  expect_error(predict(fit, transform(df[1:3, ], x1 = NA_real_)), "newdata: column 'x1' has 3 missing value\\(s\\)")
  expect_error(predict(fit, transform(df[1:3, ], x1 = NA)), "newdata: column 'x1' has 3 missing value\\(s\\)")
  form <- do.call(dual_encoder_mtl, c(list(y ~ x1 + x2 | school, data = df, seed = 1), FAST))
  expect_error(predict(form, transform(df[1:3, ], x1 = NA)), "newdata: column 'x1' has 3 missing value\\(s\\)")
  expect_error(predict(form, transform(df[1:3, ], x2 = c(1, NA, 2))), "newdata: column 'x2' has 1 missing value\\(s\\)")
  expect_error(predict(form, transform(df[1:3, ], x1 = "a")), "newdata: column 'x1' is character, not numeric")
  # a logical column of a numeric covariate is read as numbers
  expect_equal(predict(form, transform(df[1:3, ], x1 = c(TRUE, FALSE, TRUE))),
               predict(form, transform(df[1:3, ], x1 = c(1, 0, 1))))
})
