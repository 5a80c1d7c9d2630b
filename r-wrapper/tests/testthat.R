library(testthat)
library(hetmtl)

test_check("hetmtl")
