// Compiled without HETMTL_MARCH, unlike the rest of the module: when the core was built for an
// x86-64 level above the baseline (HETMTL_CPU_LEVEL, e.g. "x86-64-v3"), check at load time, before
// any code built for that level runs, that this CPU has it. Without the check such a build dies
// with SIGILL at some later call; with it, loading stops at once with a message that says why.
#include <cstdio>
#include <cstdlib>

#if defined(HETMTL_CPU_LEVEL) && (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
namespace {

__attribute__((constructor(101))) void hetmtl_check_cpu_level() {
    __builtin_cpu_init();
    if (__builtin_cpu_supports(HETMTL_CPU_LEVEL)) return;
    std::fputs("hetmtl: the compiled core was built for " HETMTL_CPU_LEVEL
               " (-march), which this CPU does not support; reinstall hetmtl built with the default "
               "HETMTL_MARCH (empty: portable), e.g. pip install --force-reinstall --no-binary hetmtl hetmtl\n",
               stderr);
    std::_Exit(EXIT_FAILURE);
}

}  // namespace
#endif
