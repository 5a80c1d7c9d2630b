# Named scikit-learn learners for the nuisance functions of site_dml(). The Python package's
# registry (hetmtl.fusion.learners) builds them; R only passes names, seeds and parameters.

# An option list of the Python package (a tuple of strings), read once per session.
py_choices <- function(module, name) {
  key <- paste0(module, ".", name)
  cached <- .hetmtl$choices[[key]]
  if (!is.null(cached)) {
    return(cached)
  }
  # Torch-based subpackages are named by their path below hetmtl ("dual.estimator"); the others
  # live in hetmtl.fusion.
  mod <- if (grepl("^(dual|blockwise)\\.", module)) py_torch_module(module) else py_module(module)
  values <- py_chr(reticulate::py_get_attr(mod, name))
  .hetmtl$choices[[key]] <- values
  values
}

learner_names <- function() py_choices("learners", "LEARNERS")

# A scikit-learn learner by name (documented in man/).
dml_learner <- function(name, type = c("regressor", "classifier"), seed = NULL, ...) {
  check_choice(name, "name", learner_names())
  type <- check_choice(type[1], "type", py_choices("learners", "LEARNER_KINDS"))
  seed <- check_seed(seed, "seed")
  args <- list(...)
  if (length(args) && (is.null(names(args)) || any(!nzchar(names(args))))) {
    arg_error("...", "every learner parameter must be named")
  }
  make <- py_module("learners")$make_learner
  py_call(do.call(make, c(list(name, type, random_state = seed), args)))
}
