#include "huge_text.h"

#include "common/fd_io.h"
#include "common/unique_fd.h"

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <link.h>
#include <string>
#include <sys/mman.h>

namespace posta {

namespace {

constexpr std::uintptr_t huge_page = std::uintptr_t { 2 } << 20;

std::uintptr_t round_down(std::uintptr_t at) { return at & ~(huge_page - 1); }
std::uintptr_t round_up(std::uintptr_t at) { return round_down(at + huge_page - 1); }

// `always` or `madvise` (the bracketed word of the kernel's setting).
bool transparent_huge_pages_usable()
{
    UniqueFd file(::open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC));
    std::string setting(256, '\0');
    if (!file || !read_into(file.get(), setting, "transparent_hugepage/enabled"))
        return false;
    return setting.find("[always]") != std::string::npos || setting.find("[madvise]") != std::string::npos;
}

struct Range {
    std::uintptr_t from = 0; // the first huge page
    std::uintptr_t end = 0;  // the text's end
    std::uintptr_t to = 0;   // the end of the last huge page
};

// The huge pages over the program's executable segment (the program is the
// first object dl_iterate_phdr reports): from its first 2 MiB boundary to
// the boundary after its end. The rest of that last page lies before the
// next segment, which the 2 MiB segment alignment puts on a boundary: it is
// unused address space, mapped as zeros. Empty when the segments are not so
// aligned.
Range executable_huge_range()
{
    Range range;
    dl_iterate_phdr([](dl_phdr_info* info, std::size_t, void* out) -> int {
        auto* found = static_cast<Range*>(out);
        std::uintptr_t start = 0;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
            auto const& header = info->dlpi_phdr[i];
            if (header.p_type == PT_LOAD && (header.p_flags & PF_X)) {
                start = info->dlpi_addr + header.p_vaddr;
                found->end = start + header.p_memsz;
            }
        }
        found->from = round_up(start);
        found->to = round_up(found->end);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
            auto const& header = info->dlpi_phdr[i];
            std::uintptr_t at = info->dlpi_addr + header.p_vaddr;
            if (header.p_type == PT_LOAD && at >= found->end && at < found->to)
                *found = Range {};
        }
        return 1; // the program only
    }, &range);
    return range;
}

}

Result<std::size_t> move_text_to_huge_pages()
{
    if (char const* setting = std::getenv("POSTA_HUGE_TEXT"); setting && std::strcmp(setting, "0") == 0)
        return std::size_t { 0 };
    if (!transparent_huge_pages_usable())
        return std::size_t { 0 };
    Range text = executable_huge_range();
    if (text.from >= text.end)
        return std::size_t { 0 };
    // The rest of the last huge page must be free address space: claim it
    // (mremap replaces the claim), or leave that page out.
    auto text_end_page = (text.end + 4095) & ~std::uintptr_t { 4095 };
    if (text.to > text_end_page) {
        void* gap = ::mmap(reinterpret_cast<void*>(text_end_page), text.to - text_end_page, PROT_NONE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (gap == MAP_FAILED || reinterpret_cast<std::uintptr_t>(gap) != text_end_page) {
            if (gap != MAP_FAILED)
                ::munmap(gap, text.to - text_end_page);
            text.to = round_down(text.end);
            text.end = text.to;
            if (text.from >= text.to)
                return std::size_t { 0 };
        }
    }
    std::size_t length = text.to - text.from;
    auto give_up = [&](void* mapped, std::size_t mapped_length, int code, char const* op) -> Result<std::size_t> {
        if (mapped)
            ::munmap(mapped, mapped_length);
        if (text.to > text_end_page)
            ::munmap(reinterpret_cast<void*>(text_end_page), text.to - text_end_page);
        return Error::from_errno_code(code, op, "huge text");
    };

    // A huge page needs an aligned address: map one huge page more than
    // needed and use the aligned part.
    void* area = ::mmap(nullptr, length + huge_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED)
        return give_up(nullptr, 0, errno, "mmap");
    auto area_start = reinterpret_cast<std::uintptr_t>(area);
    auto area_end = area_start + length + huge_page;
    std::uintptr_t copy = round_up(area_start);
    auto unmap_rest = [&](std::uintptr_t kept_from, std::uintptr_t kept_to) {
        if (kept_from > area_start)
            ::munmap(area, kept_from - area_start);
        if (area_end > kept_to)
            ::munmap(reinterpret_cast<void*>(kept_to), area_end - kept_to);
    };
    auto* copy_at = reinterpret_cast<void*>(copy);
    if (::madvise(copy_at, length, MADV_HUGEPAGE) < 0)
        return give_up(area, length + huge_page, errno, "madvise");
    std::memcpy(copy_at, reinterpret_cast<void const*>(text.from), text.end - text.from);
    if (::mprotect(copy_at, length, PROT_READ | PROT_EXEC) < 0)
        return give_up(area, length + huge_page, errno, "mprotect");
    unmap_rest(copy, copy + length);
    // One system call swaps the mapping under the code that runs it: the
    // bytes at every address are the same before and after.
    if (::mremap(copy_at, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, reinterpret_cast<void*>(text.from))
        == MAP_FAILED)
        return give_up(copy_at, length, errno, "mremap");
    return length;
}

}
