// The replay driver: runs the target once on every file named on the command line, or in a
// directory named there (not recursively), in name order. ctest runs it on the seed corpus, so
// every input that ever crashed a decoder stays a regression test with the ordinary compiler.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_target.h"

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path path(argv[i]);
    if (std::filesystem::is_directory(path)) {
      for (const auto& entry : std::filesystem::directory_iterator(path))
        if (entry.is_regular_file()) files.push_back(entry.path());
    } else {
      files.push_back(path);
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "usage: %s <file or directory>...: no input found\n", argv[0]);
    return 2;
  }
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "%s: cannot read %s\n", argv[0], file.c_str());
      return 2;
    }
    const std::string input((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Named before it runs: a crash leaves the culprit as the last line.
    std::fprintf(stderr, "%s: %s (%zu bytes)\n", vnetipam::fuzz::kTargetName, file.c_str(),
                 input.size());
    vnetipam::fuzz::fuzzOne(input);
  }
  std::printf("%s: %zu inputs replayed\n", vnetipam::fuzz::kTargetName, files.size());
  return 0;
}
