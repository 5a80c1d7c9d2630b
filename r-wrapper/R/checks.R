# Argument checks at the R boundary. Every message names the argument and the problem, in the
# same "arg: problem" form as the Python package.

arg_error <- function(arg, ...) {
  stop(paste0(arg, ": ", ...), call. = FALSE)
}

fmt_values <- function(x) {
  paste0("'", x, "'", collapse = ", ")
}

# A count with its noun, singular for one: "1 site", "3 sites" (for printed output).
n_of <- function(n, noun, plural = paste0(noun, "s")) {
  sprintf("%d %s", as.integer(n), if (n == 1) noun else plural)
}

check_string <- function(x, arg, allow_null = FALSE) {
  if (is.null(x) && allow_null) {
    return(NULL)
  }
  if (!is.character(x) || length(x) != 1L || is.na(x) || !nzchar(x)) {
    arg_error(arg, "must be a single non-empty string")
  }
  x
}

check_choice <- function(x, arg, choices) {
  if (!is.character(x) || length(x) != 1L || is.na(x) || !(x %in% choices)) {
    shown <- if (is.character(x) && length(x) == 1L) fmt_values(x) else deparse1(x)
    arg_error(arg, "must be one of ", fmt_values(choices), ", got ", shown)
  }
  x
}

# A whole number >= lower, returned as an integer (so that Python receives an int, not a float).
check_count <- function(x, arg, lower) {
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || !is.finite(x) || x != round(x) ||
        x < lower || x > .Machine$integer.max) {
    arg_error(arg, "must be a whole number >= ", lower, ", got ", deparse1(x))
  }
  as.integer(x)
}

check_flag <- function(x, arg) {
  if (!is.logical(x) || length(x) != 1L || is.na(x)) {
    arg_error(arg, "must be TRUE or FALSE, got ", deparse1(x))
  }
  x
}

check_seed <- function(x, arg = "seed") {
  if (is.null(x)) {
    return(NULL)
  }
  check_count(x, arg, 0L)
}

check_level <- function(x, arg = "level", allow_null = FALSE) {
  if (is.null(x) && allow_null) {
    return(NULL)
  }
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || x <= 0 || x >= 1) {
    arg_error(arg, "must be a number in (0, 1), got ", deparse1(x))
  }
  as.double(x)
}

check_number <- function(x, arg, lower = -Inf, lower_open = FALSE) {
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || !is.finite(x) ||
        x < lower || (lower_open && x == lower)) {
    bound <- if (lower_open) paste0("> ", lower) else paste0(">= ", lower)
    arg_error(arg, "must be a finite number ", bound, ", got ", deparse1(x))
  }
  as.double(x)
}

# Column names of `data`: a character vector whose entries all exist.
check_columns <- function(cols, data, arg, max_len = Inf) {
  if (!is.character(cols) || length(cols) == 0L || anyNA(cols)) {
    arg_error(arg, "must be ", if (max_len == 1) "a column name" else "column name(s)",
              " of data (a character ", if (max_len == 1) "string" else "vector", ")")
  }
  if (length(cols) > max_len) {
    arg_error(arg, "must be a single column name, got ", length(cols), " names")
  }
  missing <- setdiff(cols, names(data))
  if (length(missing)) {
    arg_error(arg, "column(s) ", fmt_values(missing), " not found in data")
  }
  if (anyDuplicated(cols)) {
    arg_error(arg, "repeats column(s) ", fmt_values(unique(cols[duplicated(cols)])))
  }
  cols
}

# A numeric column as double (R integers would reach numpy as int32, logicals as bool).
numeric_column <- function(data, col, arg) {
  v <- data[[col]]
  if (is.factor(v) || is.character(v)) {
    arg_error(arg, "column '", col, "' is ", if (is.factor(v)) "a factor" else "character",
              ", not numeric; encode it as numbers first (for example with model.matrix())")
  }
  if (!(is.numeric(v) || is.logical(v))) {
    arg_error(arg, "column '", col, "' is of class ", class(v)[1], ", not numeric")
  }
  if (anyNA(v)) {
    arg_error(arg, "column '", col, "' has ", sum(is.na(v)), " missing value(s)")
  }
  v <- as.double(v)
  if (any(!is.finite(v))) {
    arg_error(arg, "column '", col, "' has ", sum(!is.finite(v)), " infinite value(s)")
  }
  v
}

# The task labels of a multi-task data frame, after checking the frame and the labels.
task_labels <- function(data, task) {
  if (!is.data.frame(data)) {
    arg_error("data", "must be a data frame, got ", class(data)[1])
  }
  if (nrow(data) == 0L) {
    arg_error("data", "has no rows")
  }
  labels <- data[[task]]
  if (anyNA(labels)) {
    arg_error("task", "column '", task, "' has ", sum(is.na(labels)), " missing value(s)")
  }
  labels
}

# Columns `cols` of `data` as a double matrix, each read by `read(data, col, arg)`.
column_matrix <- function(data, cols, read, arg) {
  X <- vapply(cols, function(col) read(data, col, arg), numeric(nrow(data)))
  matrix(X, nrow = nrow(data))
}

# The response and task columns of a multi-task fit: one existing column each, not the same.
response_and_task <- function(data, y, task) {
  if (!is.data.frame(data)) {
    arg_error("data", "must be a data frame, got ", class(data)[1])
  }
  y <- check_columns(y, data, "y", max_len = 1)
  task <- check_columns(task, data, "task", max_len = 1)
  if (y == task) {
    arg_error("task", "must differ from the response column '", y, "'")
  }
  list(y = y, task = task)
}
