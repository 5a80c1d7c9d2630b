# Access to the Python package: lazy import, clear errors, Python warnings and exceptions turned
# into R conditions.

.hetmtl <- new.env(parent = emptyenv())

.onLoad <- function(libname, pkgname) {
  # delay_load: loading the R package never starts Python; the first function that needs it does
  # (through py_module(), which imports the submodules it needs). reticulate chooses the
  # interpreter, after choose_hetmtl_python() has named one where the user asked for it.
  choose_hetmtl_python()
  .hetmtl$py <- reticulate::import("hetmtl", delay_load = TRUE, convert = FALSE)
  .hetmtl$modules <- list()
  .hetmtl$choices <- list()
}

# Is the hetmtl Python package usable? (documented in man/). The real package and what it needs
# are imported: a folder named hetmtl/ in the working directory (R CMD check's hetmtl.Rcheck/ has
# one) is importable as an empty namespace package and must not count. A success is remembered.
HETMTL_PYTHON_NEEDS <- c("numpy", "pandas", "scipy", "sklearn", "hetmtl._core",
                         "hetmtl.fusion.site_dml", "hetmtl.fusion.late_fusion")

hetmtl_python_available <- function() {
  if (isTRUE(.hetmtl$available)) {
    return(TRUE)
  }
  ok <- tryCatch({
    reticulate::py_available(initialize = TRUE) &&
      all(vapply(HETMTL_PYTHON_NEEDS, reticulate::py_module_available, logical(1))) && {
        pkg <- reticulate::import("hetmtl", convert = FALSE)
        # A namespace package has no __file__ (None); the real one has its __init__.py.
        file <- reticulate::py_to_r(reticulate::py_get_attr(pkg, "__file__"))
        is.character(file) && length(file) == 1L && nzchar(file)
      }
  }, error = function(e) FALSE)
  .hetmtl$available <- isTRUE(ok)
  .hetmtl$available
}

# The seed handed to Python: the one given, or one drawn from R's random number stream, so that
# set.seed() makes a call without `seed` reproducible (as for any R function that draws).
resolve_seed <- function(seed, arg = "seed") {
  if (is.null(seed)) {
    return(sample.int(.Machine$integer.max, 1L))
  }
  check_count(seed, arg, 0L)
}

python_missing_message <- function() {
  python <- tryCatch(reticulate::py_config()$python, error = function(e) NA_character_)
  if (is.null(python) || is.na(python)) {
    requested <- Sys.getenv("RETICULATE_PYTHON")
    where <- if (nzchar(requested)) paste0(" (RETICULATE_PYTHON is '", requested, "')") else ""
    return(paste0("hetmtl: no usable Python interpreter was found", where, ". Install Python ",
                  ">= 3.10 with the 'hetmtl' package and point RETICULATE_PYTHON to it."))
  }
  paste0("hetmtl: the Python package 'hetmtl' cannot be imported by the Python reticulate uses (",
         python, "). Install it there (pip install hetmtl), or set RETICULATE_PYTHON to a ",
         "Python that has it before the first call (a new R session is needed once Python ",
         "has started).")
}

# The Python module hetmtl.fusion.<name>, imported once, without automatic conversion so that
# numbers cross the boundary only where this package converts them explicitly.
py_module <- function(name) {
  mod <- .hetmtl$modules[[name]]
  if (!is.null(mod)) {
    return(mod)
  }
  if (!hetmtl_python_available()) {
    stop(python_missing_message(), call. = FALSE)
  }
  mod <- reticulate::import(paste0("hetmtl.fusion.", name), convert = FALSE)
  .hetmtl$modules[[name]] <- mod
  mod
}

# A torch-based subpackage of hetmtl (hetmtl.<name>), imported once; its import error (torch
# missing) reaches R as a clean message.
py_torch_module <- function(name) {
  mod <- .hetmtl$modules[[name]]
  if (!is.null(mod)) {
    return(mod)
  }
  if (!hetmtl_python_available()) {
    stop(python_missing_message(), call. = FALSE)
  }
  import_torch_with_own_blas()
  mod <- py_call(reticulate::import(paste0("hetmtl.", name), convert = FALSE))
  .hetmtl$modules[[name]] <- mod
  mod
}

# torch exports the BLAS it is linked with (sgemm_, ...) without binding its own calls to it, and
# R has already loaded its own BLAS under the same names: inside R, torch's matrix products would
# run on R's BLAS and differ from Python's in the last digits. Loading torch with RTLD_DEEPBIND
# makes it resolve those names within itself first, so a seed gives the same numbers in R as in
# Python. Only torch's import runs with the flag.
TORCH_IMPORT <- "
import os, sys
if 'torch' in sys.modules:
    _hetmtl_torch_before = True
else:
    _hetmtl_torch_before = False
    _flags = sys.getdlopenflags()
    sys.setdlopenflags(_flags | getattr(os, 'RTLD_DEEPBIND', 0))
    try:
        import torch
    finally:
        sys.setdlopenflags(_flags)
"

import_torch_with_own_blas <- function() {
  if (isTRUE(.hetmtl$torch_imported)) {
    return(invisible(NULL))
  }
  # torch's compiler caches go to R's session folder (removed when R ends), not to the shared
  # temporary folder.
  cache <- gsub("\\\\", "/", file.path(tempdir(), "torchinductor"))
  code <- paste0("import os\nos.environ.setdefault('TORCHINDUCTOR_CACHE_DIR', r'", cache, "')\n",
                 TORCH_IMPORT)
  env <- py_call(reticulate::py_run_string(code, local = TRUE, convert = FALSE))
  .hetmtl$torch_imported <- TRUE
  if (isTRUE(reticulate::py_to_r(reticulate::py_get_item(env, "_hetmtl_torch_before")))) {
    warning("torch was imported into this R session before hetmtl imported it, so its matrix ",
            "products may run on R's BLAS: results can differ from Python's in the last digits",
            call. = FALSE)
  }
  invisible(NULL)
}

py_builtin_module <- function(name) {
  reticulate::import(name, convert = FALSE)
}

# Strip reticulate's decoration from a Python exception and say it in R's terms: ValueErrors (and
# the package's ArgumentError) already name the argument; Python's 0-based row, fold and
# repetition numbers become 1-based, list syntax and Python-only names become R's, and other
# exceptions (a scikit-learn parameter error, say) lose their Python class name. `x_arg`: see
# r_language().
clean_python_error <- function(e, x_arg = "x") {
  msg <- conditionMessage(e)
  msg <- sub("\n*Run `reticulate::py_last_error\\(\\)` for details\\.?\\s*$", "", msg)
  msg <- trimws(msg)
  msg <- sub("^([A-Za-z_][A-Za-z0-9_]*\\.)*[A-Za-z_]*(Error|Exception|Warning): ", "", msg)
  r_language(msg, x_arg)
}

# Python spellings in a message from the Python package, rewritten for R users. `x_arg` is the R
# argument the Python covariate matrix X came in by: `x` where the R function has one, else the
# data frame its columns were read from (blockwise_mtl(): `data`; predict(): `newdata`).
r_language <- function(msg, x_arg = "x") {
  msg <- one_based(msg, "(\\b(?:row|rows|fold|repetition|index|indices) )(\\d+)")
  msg <- gsub("outside 0\\.\\.(\\d+)", "outside 1..<n>\\1", msg, perl = TRUE)
  msg <- one_based(msg, "(outside 1\\.\\.<n>)(\\d+)")
  msg <- gsub("outside 1\\.\\.<n>", "outside 1..", msg, fixed = FALSE)
  msg <- gsub("\\bindices\\b", "row numbers", msg)
  # The covariate matrix X is `x_arg` in R; y[r] and X[r] are per-task lists.
  msg <- gsub("(^|[ (])X(\\[[0-9]+\\])?:", paste0("\\1", x_arg, ":"), msg)
  msg <- gsub("\\b(of|but) X\\b", paste0("\\1 ", x_arg), msg)
  msg <- gsub("\\btask_report_\\b", "the fit's task_report", msg)
  msg <- gsub("\\b([a-z_]+)_\\b(?=[ ),.;])", "\\1", msg, perl = TRUE)
  # Python lists of strings or numbers, and tuples of strings: ['a', 'b'] -> 'a', 'b'.
  msg <- gsub("\\[((?:'[^']*'|-?[0-9.eE+-]+)(?:, (?:'[^']*'|-?[0-9.eE+-]+))*)\\]", "\\1", msg,
              perl = TRUE)
  msg <- gsub("\\(('[^']*'(?:, '[^']*')*),?\\)", "\\1", msg, perl = TRUE)
  msg <- gsub("\\bNone\\b", "NULL", msg)
  msg <- gsub("\\bTrue\\b", "TRUE", gsub("\\bFalse\\b", "FALSE", msg))
  msg
}

# Add 1 to the number captured as group 2 of `pattern` (group 1 is kept as it is).
one_based <- function(msg, pattern) {
  m <- gregexpr(pattern, msg, perl = TRUE)[[1]]
  if (m[1] < 0) {
    return(msg)
  }
  starts <- attr(m, "capture.start")[, 2]
  lens <- attr(m, "capture.length")[, 2]
  for (i in rev(seq_along(starts))) {
    num <- as.numeric(substr(msg, starts[i], starts[i] + lens[i] - 1L)) + 1
    msg <- paste0(substr(msg, 1L, starts[i] - 1L), format(num, scientific = FALSE),
                  substr(msg, starts[i] + lens[i], nchar(msg)))
  }
  msg
}

# Evaluate `expr` (which calls into Python) with Python warnings recorded and re-signalled as R
# warnings after the call, and Python exceptions turned into R errors with a clean message.
# `x_arg`: the R argument that the Python X of `expr` came in by, named in its messages.
py_call <- function(expr, x_arg = "x") {
  warnings_mod <- py_builtin_module("warnings")
  ctx <- warnings_mod$catch_warnings(record = TRUE)
  recorded <- NULL
  value <- tryCatch(
    with(ctx %as% rec, {
      recorded <- rec
      expr
    }),
    error = function(e) stop(clean_python_error(e, x_arg), call. = FALSE)
  )
  if (!is.null(recorded)) {
    messages <- character(0)
    for (i in seq_len(reticulate::py_len(recorded)) - 1L) {
      w <- reticulate::py_get_item(recorded, i)
      messages <- c(messages, reticulate::py_str(w$message))
    }
    # A learner may warn once per fold; one R warning per distinct message is enough.
    for (m in unique(messages)) {
      warning(r_language(m, x_arg), call. = FALSE)
    }
  }
  value
}

# ---------------------------------------------------------------- conversions Python -> R

is_py_none <- function(x) {
  reticulate::py_to_r(reticulate::import_builtins(convert = FALSE)$isinstance(
    x, reticulate::import_builtins(convert = FALSE)$type(reticulate::py_none())))
}

py_num <- function(x) {
  v <- reticulate::py_to_r(x)
  if (is.list(v)) {
    v <- unlist(v)
  }
  as.numeric(v)
}

py_chr <- function(x) {
  v <- reticulate::py_to_r(x)
  as.character(unlist(v))
}

py_lgl <- function(x) {
  v <- reticulate::py_to_r(x)
  as.logical(unlist(v))
}

py_mat <- function(x) {
  m <- reticulate::py_to_r(x)
  m <- as.matrix(m)
  storage.mode(m) <- "double"
  m[is.nan(m)] <- NA_real_
  m
}

# A column of a pandas DataFrame as an R vector (via tolist(), so object columns of strings and
# bool columns convert cleanly whatever pandas' dtype).
py_column <- function(df, name) {
  col <- reticulate::py_get_item(df, name)
  v <- reticulate::py_to_r(col$tolist())
  if (is.list(v)) {
    v <- unlist(lapply(v, function(e) if (is.null(e)) NA else e))
  }
  # Python reports "not available" as NaN; R's missing value is NA.
  if (is.double(v)) {
    v[is.nan(v)] <- NA_real_
  }
  v
}

# A pandas DataFrame as an R data frame (its index dropped; column names kept as they are).
r_frame <- function(frame) {
  cols <- py_chr(frame$columns$tolist())
  as.data.frame(stats::setNames(lapply(cols, function(col) py_column(frame, col)), cols),
                stringsAsFactors = FALSE, check.names = FALSE)
}

# ---------------------------------------------------------------- fits that survive saveRDS()

# The Python object's bytes in the Python package's own file format (hetmtl.dumps, no pickle), as
# base64 text that rides along in the R object; NULL where the Python package cannot save.
py_serialize <- function(obj) {
  pkg <- reticulate::import("hetmtl", convert = FALSE)
  if (!reticulate::py_has_attr(pkg, "dumps")) {
    return(NULL)
  }
  b64 <- py_builtin_module("base64")
  # An object the format cannot hold (a fit with a user's own scikit-learn learner, say) stays
  # unsaved; py_fit() then says so when it is needed.
  tryCatch(py_chr(b64$b64encode(pkg$dumps(obj))$decode("ascii")), error = function(e) NULL)
}

# The live Python object of a fit: its reference, or, after readRDS() or in a new session (the
# reference is then a null pointer), the object rebuilt from the bytes stored at fit time.
py_fit <- function(x, what) {
  py <- .subset2(x, "py")
  if (!is.null(py) && !reticulate::py_is_null_xptr(py)) {
    return(py)
  }
  stored <- .subset2(x, "serialized")
  if (is.null(stored)) {
    stop(what, ": the Python object of this fit is gone and the fit holds no saved copy of it ",
         "(the Python package could not save it); fit again", call. = FALSE)
  }
  if (!hetmtl_python_available()) {
    stop(python_missing_message(), call. = FALSE)
  }
  if (inherits(x, "hetmtl_neural")) {
    import_torch_with_own_blas()
  }
  pkg <- reticulate::import("hetmtl", convert = FALSE)
  py_call(pkg$loads(py_builtin_module("base64")$b64decode(stored)))
}
