# Which Python the package uses, and a one-call way to give it one of its own.

HETMTL_ENVNAME <- "r-hetmtl"

# Called from .onLoad, before Python starts. An explicit RETICULATE_PYTHON always wins; then the
# option hetmtl.python or the variable HETMTL_PYTHON; then the environment made by
# install_hetmtl(). Otherwise reticulate chooses as it always does.
choose_hetmtl_python <- function() {
  if (nzchar(Sys.getenv("RETICULATE_PYTHON"))) {
    return(invisible(NULL))
  }
  path <- getOption("hetmtl.python", Sys.getenv("HETMTL_PYTHON"))
  if (!nzchar(path)) {
    found <- tryCatch(reticulate::virtualenv_exists(HETMTL_ENVNAME), error = function(e) FALSE)
    if (isTRUE(found)) {
      path <- reticulate::virtualenv_python(HETMTL_ENVNAME)
    }
  }
  if (nzchar(path)) {
    Sys.setenv(RETICULATE_PYTHON = path)
  }
  invisible(NULL)
}

# A virtual environment with the Python package and NumPy 1.x (documented in man/).
install_hetmtl <- function(package = "hetmtl", envname = "r-hetmtl", torch = TRUE,
                           python = NULL) {
  check_string(package, "package")
  check_string(envname, "envname")
  check_flag(torch, "torch")
  requirement <- if (torch) paste0(package, "[torch]") else package
  if (!reticulate::virtualenv_exists(envname)) {
    reticulate::virtualenv_create(envname, python = python)
  }
  reticulate::virtualenv_install(envname, c("numpy<2", requirement), ignore_installed = FALSE)
  path <- reticulate::virtualenv_python(envname)
  message("hetmtl: Python environment ready at ", path, "; restart R to use it.")
  invisible(path)
}
