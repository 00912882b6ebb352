// The program's machine code in huge pages, for the worker template
// (worker_template.h) to do once before it forks any worker.
//
// On a virtual machine with shadow paging (measured on the bench machine,
// bench/README.md "Where the time goes"), the first touch of each 4 KiB page
// in a newly forked process costs about 5 us even when the page is already
// mapped, and a worker's start touches hundreds of pages of posta-server's
// code. The same code in 2 MiB transparent huge pages costs one such touch
// per 2 MiB. So the template copies the part of its text segment that covers
// whole 2 MiB pages (the binary is linked with 2 MiB segment alignment for
// this) into anonymous memory with MADV_HUGEPAGE, then moves the copy over
// the original with mremap(2): the same bytes at the same addresses, read and
// execute only, shared by every worker forked afterwards and never written.
//
// Nothing depends on it: without transparent huge pages (the kernel's
// `enabled` is `never`), on a text segment too small or not aligned, or on
// any error, the text stays as the loader mapped it. POSTA_HUGE_TEXT=0 in
// the environment turns it off (a profiler such as perf names functions only
// in file-backed text).
#pragma once

#include "common/result.h"

#include <cstddef>

namespace posta {

// Must run while the process has one thread. Returns the bytes moved, 0
// when skipped; an error leaves the text as it was.
Result<std::size_t> move_text_to_huge_pages();

}
