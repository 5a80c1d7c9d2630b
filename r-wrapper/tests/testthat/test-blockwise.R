# blockwise_mtl() and block_impute(): same numbers as the Python classes for a seed, errors.

sim_blocks <- function(seed = 1, n = 40, mask = TRUE) {
  set.seed(seed)
  task <- rep(c("a", "b"), each = n)
  z <- rnorm(2 * n)  # a common factor: the sources are predictable from the anchor
  anchor <- sapply(1:4, function(j) z + 0.3 * rnorm(2 * n))
  s1 <- sapply(1:3, function(j) z + 0.3 * rnorm(2 * n))
  s2 <- sapply(1:3, function(j) -z + 0.3 * rnorm(2 * n))
  y <- z + 0.5 * s1[, 1] - 0.5 * s2[, 1] + ifelse(task == "a", 0.3, -0.3) + 0.1 * rnorm(2 * n)
  if (mask) {
    s1[task == "b", ] <- NA  # source s1 only for task a, s2 only for task b
    s2[task == "a", ] <- NA
  }
  df <- data.frame(y = y, cohort = task, anchor, s1, s2)
  names(df)[3:12] <- c(paste0("x", 1:4), paste0("p", 1:3), paste0("q", 1:3))
  df
}

SOURCES <- list(base = paste0("x", 1:4), s1 = paste0("p", 1:3), s2 = paste0("q", 1:3))
FAST <- list(hidden = 6, n_layers = 1, max_epochs = 8, patience = 4, imputer = "mean")

test_that("blockwise_mtl matches the Python class for a seed", {
  skip_if_no_hetmtl()
  df <- sim_blocks()
  fit <- do.call(blockwise_mtl, c(list(df, y = "y", task = "cohort", sources = SOURCES, anchor = "base",
                                       seed = 2), FAST))
  expect_s3_class(fit, "hetmtl_blockwise")
  expect_equal(fit$layout$task, c("a", "b"))
  expect_equal(unname(unlist(fit$layout[1, -1])), c("observed", "observed", "missing"))
  pred <- predict(fit, df)
  expect_length(pred, nrow(df))
  expect_true(all(is.finite(pred)))
  # Python's X is the R argument the rows came in by: newdata for predict().
  gap <- df[1:5, ]
  gap$p1[2] <- NA
  expect_error(predict(fit, gap), "^newdata: source 's1' is observed by task 'a' but row 2 has NaN")
  bw <- reticulate::import("hetmtl.blockwise", convert = FALSE)
  np <- reticulate::import("numpy", convert = FALSE)
  X <- py_df(df[, unlist(SOURCES)])
  labels <- np$array(df$cohort)
  layout <- bw$BlockLayout$from_data(X, labels, reticulate::r_to_py(lapply(SOURCES, as.list)), "base")
  ref <- bw$TwoPathwayMTL(layout, imputer = "mean", hidden = 6L, n_layers = 1L, max_epochs = 8L,
                          patience = 4L, random_state = 2L)
  ref$fit(X, np$array(df$y, dtype = "float64"), labels)
  expect_equal(pred, py_vec(ref$predict(X, labels)), tolerance = 1e-10)
  idx <- c(3, 70, 41)
  expect_equal(predict(fit, df[idx, ]), pred[idx], tolerance = 1e-6)
  expect_output(print(fit), "2 tasks")
})

test_that("block_impute keeps observed values and fills missing blocks", {
  skip_if_no_hetmtl()
  df <- sim_blocks()
  done <- block_impute(df, task = "cohort", sources = SOURCES, anchor = "base", method = "mean")
  a <- df$cohort == "a"
  expect_equal(done[a, SOURCES$s1], df[a, SOURCES$s1])
  expect_false(anyNA(done[, unlist(SOURCES)]))
  # mean imputation: the observers' column means
  expect_equal(unname(unlist(done[!a, "p1"])), rep(mean(df$p1[a]), sum(!a)), tolerance = 1e-12)
  hbi <- block_impute(df, task = "cohort", sources = SOURCES, anchor = "base", method = "hbi",
                      width = 8, depth = 1, lam_orth = 0, max_epochs = 300, seed = 1)
  expect_false(anyNA(hbi[, unlist(SOURCES)]))
  report <- attr(hbi, "imputation_report")
  expect_true(is.data.frame(report))
  expect_equal(nrow(report), 2L)
  # The anchor predicts the sources (a common factor): HBI beats the observers' means.
  truth <- sim_blocks(mask = FALSE)
  err <- function(filled) {
    sqrt(mean(c(as.matrix(filled[!a, SOURCES$s1] - truth[!a, SOURCES$s1]),
                as.matrix(filled[a, SOURCES$s2] - truth[a, SOURCES$s2]))^2))
  }
  expect_lt(err(hbi), 0.7 * err(done))
})

test_that("blockwise functions report bad input clearly", {
  skip_if_no_hetmtl()
  df <- sim_blocks()
  expect_error(blockwise_mtl(df, y = "y", task = "cohort", sources = SOURCES, anchor = "zz"),
               "anchor: 'zz' is not one of the sources")
  expect_error(blockwise_mtl(df, y = "y", task = "cohort", sources = list(SOURCES$base), anchor = "base"),
               "sources: must be a named list")
  expect_error(blockwise_mtl(df, y = "y", task = "cohort", sources = list(base = c("x1", "nope")),
                             anchor = "base"), "sources\\$base: column\\(s\\) 'nope' not found")
  expect_error(blockwise_mtl(df, y = "y", task = "cohort", sources = SOURCES, anchor = "base",
                             imputer = "knn"), "imputer: must be one of")
  expect_error(blockwise_mtl(df, y = "y", task = "cohort", sources = SOURCES, anchor = "base",
                             jobs = 0), "jobs: must be a whole number >= 1")
  bad <- df
  bad$p2[1] <- NA  # a partly observed block
  # Python's X is named as the R argument the rows came in by (blockwise_mtl() has no `x`).
  expect_error(blockwise_mtl(bad, y = "y", task = "cohort", sources = SOURCES, anchor = "base"),
               "^data: source 's1' is partly observed for task 'a'")
  bad <- df
  bad$x1[5] <- NA  # the anchor must be observed everywhere
  expect_error(block_impute(bad, task = "cohort", sources = SOURCES, anchor = "base", method = "mean"),
               "^data: source 'base' is partly observed")
  gap <- df[1:5, ]
  gap$p1[2] <- NA
  expect_error(block_impute(df, task = "cohort", sources = SOURCES, anchor = "base", method = "mean",
                            newdata = gap), "^newdata: source 's1' is observed by task 'a' but row 2")
  expect_error(block_impute(df, task = "cohort", sources = SOURCES, anchor = "base", method = "zero"),
               "method: must be one of")
})

test_that("the device reaches the HBI imputer", {
  skip_if_no_hetmtl()
  df <- sim_blocks()
  model <- list(df, y = "y", task = "cohort", sources = SOURCES, anchor = "base", hidden = 6, n_layers = 1,
                max_epochs = 4, patience = 2, seed = 1)
  hbi <- list(width = 4, depth = 1, lam_orth = 0, max_epochs = 20)
  fit <- do.call(blockwise_mtl, c(model, list(imputer_grid = hbi, device = "cpu")))
  expect_equal(reticulate::py_str(fit$py$imputer_$device), "cpu")
  # Two stacks at once give the fit of one stack after another.
  grid <- list(hidden = c(4, 6), n_layers = c(1, 2))
  serial <- do.call(blockwise_mtl, c(model, list(imputer = "mean", grid = grid)))
  parallel <- do.call(blockwise_mtl, c(model, list(imputer = "mean", grid = grid, jobs = 2)))
  expect_equal(parallel$cv_results, serial$cv_results)
  expect_equal(fitted(parallel), fitted(serial))
  if (!reticulate::import("torch")$cuda$is_available()) {
    expect_error(do.call(blockwise_mtl, c(model, list(imputer_grid = hbi, device = "cuda"))),
                 "device: 'cuda' was asked for")
    expect_error(block_impute(df, task = "cohort", sources = SOURCES, anchor = "base", width = 4, depth = 1,
                              lam_orth = 0, max_epochs = 5, device = "cuda", seed = 1),
                 "device: 'cuda' was asked for")
  }
})

test_that("hetmtl_data('mini_acc') gives the Python loader's table and the sources of blockwise_mtl()", {
  skip_if_not_installed("MultiAssayExperiment")
  acc <- hetmtl_data("mini_acc")
  sources <- attr(acc, "sources")
  # the counts of the Python loader's test (tests/test_datasets_mini_acc.py)
  expect_identical(nrow(acc), 92L)
  expect_identical(lengths(sources), c(RNASeq2GeneNorm = 198L, gistict = 198L, RPPAArray = 33L,
                                       Mutations = 97L, miRNASeqGene = 471L))
  complete <- vapply(sources, function(cols) rowSums(!is.finite(as.matrix(acc[cols]))) == 0,
                     logical(nrow(acc)))
  expect_identical(colSums(complete), c(RNASeq2GeneNorm = 79, gistict = 90, RPPAArray = 46,
                                        Mutations = 90, miRNASeqGene = 80))
  for (cols in sources) {  # whole blocks: a patient has all of an assay or none of it
    seen <- rowSums(is.finite(as.matrix(acc[cols])))
    expect_true(all(seen %in% c(0L, length(cols))))
  }
  counts <- table(acc$pattern)
  expect_identical(counts[["RNASeq2GeneNorm+gistict+RPPAArray+Mutations+miRNASeqGene"]], 43L)
  expect_identical(counts[["RNASeq2GeneNorm+gistict+Mutations+miRNASeqGene"]], 32L)
  expect_match(rownames(acc)[1], "^TCGA-")
  skip_if_no_hetmtl()
  rows <- acc[acc$pattern %in% names(counts)[counts %in% c(43L, 32L)] & !is.na(acc$purity), ]
  fit <- blockwise_mtl(rows, y = "purity", task = "pattern", anchor = "copy number",
                       sources = list(`copy number` = sources$gistict, protein = sources$RPPAArray),
                       imputer = "mean", hidden = 4, n_layers = 1, max_epochs = 3, patience = 2,
                       seed = 1)
  expect_identical(fit$layout$`protein (33)`[fit$layout$task == "RNASeq2GeneNorm+gistict+Mutations+miRNASeqGene"],
                   "missing")
})
