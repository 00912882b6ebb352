#include "outbound_trust.h"

#include "common/fd_io.h"
#include "common/unique_fd.h"
#include "http/openssl_error.h"

#include <cerrno>
#include <fcntl.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

namespace posta {

namespace {

// A bundle of every public CA is about 220 KB; this leaves room for any
// real one and keeps a wrong path (a disk image, say) out of memory.
constexpr off_t max_ca_file = 16 << 20;

char const* const fix = "; fix outbound_ca_file in the config (a PEM file of CA certificates) or remove it";

}

Result<std::string> load_outbound_ca_file(std::string const& path)
{
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        Error error = Error::from_errno("open", path);
        error.detail += fix;
        return error;
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0)
        return Error::from_errno("fstat", path);
    if (!S_ISREG(st.st_mode))
        return Error::message("outbound_ca_file", std::string("is not a regular file") + fix, path);
    if (st.st_size > max_ca_file)
        return Error::message("outbound_ca_file", std::string("is larger than 16 MiB") + fix, path);
    std::string text(static_cast<size_t>(st.st_size), '\0');
    if (auto read = read_into(fd.get(), text, path); !read)
        return read.error();

    BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
    size_t certificates = 0;
    while (bio) {
        X509* certificate = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
        if (!certificate)
            break;
        X509_free(certificate);
        ++certificates;
    }
    BIO_free(bio);
    ERR_clear_error(); // the end of the text reads as "no start line"
    if (certificates == 0)
        return Error::message("outbound_ca_file", std::string("holds no PEM certificate") + fix, path);
    return text;
}

}
