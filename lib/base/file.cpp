#include "lib/base/file.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include "lib/base/unique_fd.h"

namespace vnetipam::base {

Result<void> writeFileAtomically(const std::filesystem::path& dirOrEmpty, std::string_view name,
                                 std::string_view content) {
  const std::filesystem::path dir = dirOrEmpty.empty() ? "." : dirOrEmpty;
  const auto target = dir / name;
  const auto tmp = dir / fmt::format(".{}.tmp", name);
  auto failed = [&](std::string_view what, const std::filesystem::path& path) {
    int err = errno;
    return fail(ErrorCode::kIo, fmt::format("{} {}: {}", what, path.string(), std::strerror(err)));
  };
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(ErrorCode::kIo, fmt::format("creating {}: {}", dir.string(), ec.message()));
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return failed("creating", tmp);
  std::string_view rest = content;
  while (!rest.empty()) {
    ssize_t n = ::write(fd.get(), rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      auto error = failed("writing", tmp);
      ::unlink(tmp.c_str());
      return error;
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  if (::fsync(fd.get()) != 0 || ::close(fd.release()) != 0) {
    auto error = failed("fsync", tmp);
    ::unlink(tmp.c_str());
    return error;
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    auto error = failed("renaming into place", target);
    ::unlink(tmp.c_str());
    return error;
  }
  // The file is whole for every reader now; a failed directory fsync only leaves the rename's
  // durability to the file system's next commit.
  if (const UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); dfd.valid()) {
    (void)::fsync(dfd.get());
  }
  return {};
}

}  // namespace vnetipam::base
