# Named scikit-learn learners for the nuisance functions of site_dml().

LEARNER_NAMES <- c("rf", "gbm", "lasso", "linear")

sklearn_version_at_least <- function(version) {
  sk <- py_builtin_module("sklearn")
  installed <- py_chr(sk$`__version__`)
  utils::compareVersion(sub("^([0-9]+\\.[0-9]+).*", "\\1", installed), version) >= 0
}

# A scikit-learn learner by name (documented in man/).
dml_learner <- function(name, type = c("regressor", "classifier"), seed = NULL, ...) {
  check_choice(name, "name", LEARNER_NAMES)
  type <- check_choice(type[1], "type", c("regressor", "classifier"))
  seed <- check_seed(seed, "seed")
  args <- list(...)
  if (length(args) && (is.null(names(args)) || any(!nzchar(names(args))))) {
    arg_error("...", "every learner parameter must be named")
  }
  py_call(build_learner(name, type, seed, args))
}

build_learner <- function(name, type, seed, args) {
  ensemble <- py_builtin_module("sklearn.ensemble")
  linear <- py_builtin_module("sklearn.linear_model")
  clf <- type == "classifier"
  random_state <- if (is.null(seed)) NULL else seed
  est <- switch(
    name,
    rf = if (clf) {
      ensemble$RandomForestClassifier(n_estimators = 100L, min_samples_leaf = 5L,
                                      random_state = random_state)
    } else {
      ensemble$RandomForestRegressor(n_estimators = 100L, min_samples_leaf = 5L,
                                     random_state = random_state)
    },
    gbm = if (clf) {
      ensemble$GradientBoostingClassifier(n_estimators = 100L, max_depth = 3L,
                                          random_state = random_state)
    } else {
      ensemble$GradientBoostingRegressor(n_estimators = 100L, max_depth = 3L,
                                         random_state = random_state)
    },
    lasso = if (clf) lasso_classifier(linear, random_state) else linear$LassoCV(cv = 5L),
    linear = if (clf) linear$LogisticRegression(C = Inf, max_iter = 1000L) else linear$LinearRegression()
  )
  target <- est
  if (name == "lasso") {
    # Penalties are only comparable across covariates on a common scale.
    pipeline <- py_builtin_module("sklearn.pipeline")
    preprocessing <- py_builtin_module("sklearn.preprocessing")
    est <- pipeline$make_pipeline(preprocessing$StandardScaler(), target)
  }
  if (length(args)) {
    defaults <- reticulate::py_to_r(target$get_params(deep = FALSE))
    unknown <- setdiff(names(args), names(defaults))
    if (length(unknown)) {
      cls <- py_chr(reticulate::py_get_attr(target, "__class__")$`__name__`)
      arg_error("learner_args", "unknown parameter(s) ", fmt_values(unknown), " of ", cls)
    }
    do.call(target$set_params, as_python_args(args, defaults))
  }
  est
}

lasso_classifier <- function(linear, random_state) {
  # scikit-learn 1.8 replaced `penalty = "l1"` by `l1_ratios`; build whichever this version
  # takes without deprecation warnings. saga shuffles, hence the random_state.
  args <- list(Cs = 10L, cv = 5L, solver = "saga", max_iter = 5000L, scoring = "neg_log_loss",
               random_state = random_state)
  if (sklearn_version_at_least("1.8")) {
    args$l1_ratios <- reticulate::tuple(1.0)
    defaults <- names(reticulate::py_to_r(linear$LogisticRegressionCV()$get_params()))
    if ("use_legacy_attributes" %in% defaults) {
      args$use_legacy_attributes <- FALSE
    }
  } else {
    args$penalty <- "l1"
  }
  do.call(linear$LogisticRegressionCV, args)
}
