// `calm hash-key`: the SHA-256 that auth.keys[].sha256 holds, so that the
// fleet file never holds a key itself.
//   calm hash-key < key.txt     the digest of the key on stdin (one line)
//   calm hash-key --new         a new random key, and the entry that admits it
#include <iostream>
#include <string>

#include "app/commands.h"
#include "auth/api_keys.h"

namespace calm {

Command add_hash_key_command(CLI::App& app) {
  auto make_new = std::make_shared<bool>(false);
  auto name = std::make_shared<std::string>("my-key");
  CLI::App* cmd = app.add_subcommand(
      "hash-key", "Print the SHA-256 of an API key read from stdin, for auth.keys[].sha256");
  cmd->add_flag("--new", *make_new, "Make a new random key and print it with its auth.keys entry");
  cmd->add_option("--name", *name, "The entry's name (with --new)");
  return [make_new, name] {
    if (*make_new) {
      const std::string key = new_api_key();
      std::cout << "key (give it to the client; calm keeps only its digest):\n  " << key
                << "\nauth.keys entry:\n  - name: " << *name << "\n    sha256: " << sha256_hex(key)
                << "\n    scope: inference\n";
      return 0;
    }
    std::string key;
    if (!std::getline(std::cin, key)) key.clear();
    while (!key.empty() && (key.back() == '\r' || key.back() == ' ')) key.pop_back();
    if (key.empty()) {
      std::cerr << "calm hash-key: no key on stdin (or use --new to make one)\n";
      return 2;
    }
    std::cout << sha256_hex(key) << "\n";
    return 0;
  };
}

}  // namespace calm
