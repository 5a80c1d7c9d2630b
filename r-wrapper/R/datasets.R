# Real data sets of the Python package (read from the packages that ship them), as data frames.

HETMTL_DATASETS <- c("rand_hie", "exam")

# A data set of the Python package (documented in man/).
hetmtl_data <- function(name) {
  name <- check_choice(name, "name", HETMTL_DATASETS)
  if (!hetmtl_python_available()) {
    stop(python_missing_message(), call. = FALSE)
  }
  datasets <- reticulate::import("hetmtl.datasets", convert = FALSE)
  frame <- py_call(switch(name, rand_hie = datasets$load_rand_hie(), exam = datasets$load_exam()))
  r_frame(frame)
}
