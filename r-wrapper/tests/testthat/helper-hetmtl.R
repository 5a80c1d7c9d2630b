# Shared helpers of the R tests. Python reference numbers are computed through reticulate in the
# same process, on the same inputs, so parity checks can use tight tolerances.

skip_if_no_hetmtl <- function() {
  if (!hetmtl::hetmtl_python_available()) {
    skip("the hetmtl Python package is not available to reticulate (set RETICULATE_PYTHON)")
  }
}

py_fusion <- function(module) {
  reticulate::import(paste0("hetmtl.fusion.", module), convert = FALSE)
}

py_vec <- function(x) as.numeric(unlist(reticulate::py_to_r(x)))

py_matrix <- function(x) {
  m <- as.matrix(reticulate::py_to_r(x))
  storage.mode(m) <- "double"
  m
}

# A pandas DataFrame with float64 columns (the inputs the Python reference fits get).
py_df <- function(df) {
  pd <- reticulate::import("pandas", convert = FALSE)
  cols <- lapply(df, function(v) reticulate::np_array(as.double(v), dtype = "float64"))
  pd$DataFrame(reticulate::py_dict(names(df), unname(cols), convert = FALSE))
}

# Partially linear data: y = theta d + g(x) + e, d = m(x) + v.
sim_plr <- function(n, theta = 0.5, seed = 1) {
  set.seed(seed)
  x1 <- rnorm(n)
  x2 <- rnorm(n)
  x3 <- runif(n)
  d <- 0.8 * x1 + 0.3 * x3 + rnorm(n)
  y <- theta * d + sin(x2) + 0.5 * x1 + rnorm(n)
  data.frame(y = y, d = d, x1 = x1, x2 = x2, x3 = x3)
}

# Binary-treatment data for "irm".
sim_irm <- function(n, ate = 1, seed = 1) {
  set.seed(seed)
  x1 <- rnorm(n)
  x2 <- rnorm(n)
  d <- rbinom(n, 1, stats::plogis(0.5 * x1))
  y <- ate * d + x1 + 0.5 * x2 + rnorm(n)
  data.frame(y = y, d = d, x1 = x1, x2 = x2)
}

linear_py_learners <- function() {
  lm <- reticulate::import("sklearn.linear_model", convert = FALSE)
  list(reg = lm$LinearRegression(), clf = lm$LogisticRegression(C = Inf, max_iter = 1000L))
}

# The simulated covariates of a data frame (x1, x2, ...): the data-frame interfaces want them named.
covariates <- function(df) grep("^x[0-9]+$", names(df), value = TRUE)
