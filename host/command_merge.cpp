// `attnscope merge --out DIR SRC...`: combines results directories (from different runs or
// machines) into one. Each CSV gains a first column `source` (the source directory's
// name, which carries its timestamp, device and tag); manifest.json lists the sources'
// manifests. Files must have identical headers to be merged.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "host/commands.hpp"
#include "host/csv_writer.hpp"
#include "host/runtime/error.hpp"

namespace attnscope {
namespace {

namespace fs = std::filesystem;

// Splits CSV text into records (a quoted field may hold newlines).
std::vector<std::string> csv_records(const std::string& text) {
  std::vector<std::string> records;
  std::string current;
  bool quoted = false;
  for (char c : text) {
    if (c == '"') quoted = !quoted;
    if (c == '\n' && !quoted) {
      records.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  if (!current.empty()) records.push_back(current);
  return records;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void merge_csv(const std::string& name, const std::vector<fs::path>& sources, const fs::path& out) {
  std::ofstream merged(out / name);
  std::string header;
  for (const auto& src : sources) {
    if (!fs::exists(src / name)) continue;
    std::vector<std::string> records = csv_records(read_file(src / name));
    if (records.empty()) throw Error((src / name).string() + " is empty (no header)");
    if (header.empty()) {
      header = records[0];
      merged << "source," << header << "\n";
    } else if (records[0] != header) {
      throw Error((src / name).string() + " has different columns from the first source's " +
                  name + "; cannot merge");
    }
    const std::string label = csv_escape(src.filename().string());
    for (size_t i = 1; i < records.size(); ++i) merged << label << "," << records[i] << "\n";
  }
  if (!merged) throw Error("writing " + (out / name).string() + " failed");
}

void run_merge(const std::string& out_dir, const std::vector<std::string>& inputs) {
  std::vector<fs::path> sources;
  nlohmann::json manifest = {{"tool", "attnscope"}, {"merged_from", nlohmann::json::array()}};
  for (const auto& in : inputs) {
    fs::path src = fs::path(in).lexically_normal();
    if (src.filename().empty()) src = src.parent_path();
    if (!fs::exists(src / "manifest.json"))
      throw UsageError(in + " is not a results directory (no manifest.json)");
    sources.push_back(src);
    manifest["merged_from"].push_back(
        {{"source", src.filename().string()},
         {"manifest", nlohmann::json::parse(read_file(src / "manifest.json"), nullptr, false)}});
  }
  fs::path out(out_dir);
  if (fs::exists(out) && !fs::is_empty(out))
    throw UsageError("--out " + out_dir + " exists and is not empty");
  fs::create_directories(out);
  for (const char* name : {"steps.csv", "summary.csv", "kernels.csv", "power.csv"})
    merge_csv(name, sources, out);
  std::ofstream(out / "manifest.json") << manifest.dump(2) << "\n";
  std::cout << "merged " << sources.size() << " results directories into " << out.string() << "\n";
}

}  // namespace

void add_merge_command(CLI::App& app) {
  auto out = std::make_shared<std::string>();
  auto inputs = std::make_shared<std::vector<std::string>>();
  auto* cmd = app.add_subcommand("merge", "Combine results directories into one");
  cmd->add_option("--out", *out, "The merged results directory (created)")->required();
  cmd->add_option("dirs", *inputs, "Results directories to combine")->required()->expected(1, -1);
  cmd->callback([out, inputs] { run_merge(*out, *inputs); });
}

}  // namespace attnscope
