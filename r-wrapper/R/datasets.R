# Real data sets of the Python package (read from the packages that ship them), as data frames.

HETMTL_DATASETS <- c("rand_hie", "exam", "mini_acc")

# A data set of the Python package (documented in man/).
hetmtl_data <- function(name) {
  name <- check_choice(name, "name", HETMTL_DATASETS)
  if (name == "mini_acc") {
    return(mini_acc_data())
  }
  if (!hetmtl_python_available()) {
    stop(python_missing_message(), call. = FALSE)
  }
  datasets <- reticulate::import("hetmtl.datasets", convert = FALSE)
  frame <- py_call(switch(name, rand_hie = datasets$load_rand_hie(), exam = datasets$load_exam()))
  r_frame(frame)
}

# miniACC, the table of hetmtl.datasets.load_mini_acc(). The Python loader reads it through R from
# the Bioconductor package MultiAssayExperiment, which ships it; from R it is read here directly
# (R cannot run inside the Python that runs inside R). One row per patient (row names: the
# barcodes): the clinical columns, one column "<assay>:<feature>" per assay feature (NA where the
# patient lacks the assay; one sample per patient), and `pattern`, the assays observed joined by
# "+". attr(, "sources"): assay name to its columns, the `sources` of blockwise_mtl().
mini_acc_data <- function() {
  if (!requireNamespace("MultiAssayExperiment", quietly = TRUE)) {
    arg_error("name", "'mini_acc' is read from the Bioconductor package MultiAssayExperiment, ",
              "which ships the data; install it with BiocManager::install(\"MultiAssayExperiment\")")
  }
  env <- new.env()
  utils::data("miniACC", package = "MultiAssayExperiment", envir = env)
  mae <- env$miniACC
  clinical <- as.data.frame(MultiAssayExperiment::colData(mae))
  patients <- rownames(clinical)
  smap <- as.data.frame(MultiAssayExperiment::sampleMap(mae))
  mats <- MultiAssayExperiment::assays(mae)
  blocks <- lapply(stats::setNames(names(mats), names(mats)), function(a) {
    m <- as.matrix(mats[[a]])
    rows <- smap[smap$assay == a, ]
    patient_of <- rows$primary[match(colnames(m), rows$colname)]
    keep <- !duplicated(patient_of) & !is.na(patient_of)
    wide <- matrix(NA_real_, nrow = length(patients), ncol = nrow(m),
                   dimnames = list(patients, paste0(a, ":", rownames(m))))
    wide[match(patient_of[keep], patients), ] <- t(m[, keep, drop = FALSE]) * 1.0
    wide
  })
  observed <- vapply(blocks, function(w) rowSums(!is.finite(w)) == 0, logical(length(patients)))
  frame <- cbind(clinical, as.data.frame(do.call(cbind, unname(blocks)), optional = TRUE))
  frame$pattern <- apply(observed, 1L, function(o) paste(names(blocks)[o], collapse = "+"))
  attr(frame, "sources") <- lapply(blocks, colnames)
  frame
}
