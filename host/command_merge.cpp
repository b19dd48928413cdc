// `attnscope merge --out DIR SRC...`: combines results directories (from different runs or
// machines) into one. Each CSV gains a first column `source` (the source directory's
// name, which carries its timestamp, device and tag); manifest.json lists the sources'
// manifests. Every source is read and checked before anything is written (a whole
// results directory: a manifest that parses and says completed, unless
// --include-incomplete; all four CSVs, every row as wide as its header; no source twice;
// the same columns everywhere); the output appears only complete (a staging directory
// renamed into place).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "host/commands.hpp"
#include "host/csv_writer.hpp"
#include "host/runtime/error.hpp"
#include "host/runtime/output_file.hpp"

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
  if (!in) throw UsageError("cannot read " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw UsageError("cannot read " + path.string());
  return ss.str();
}

// Cells in one record: the commas outside quotes, plus one.
size_t cell_count(const std::string& record) {
  size_t cells = 1;
  bool quoted = false;
  for (char c : record) {
    if (c == '"') quoted = !quoted;
    if (c == ',' && !quoted) ++cells;
  }
  return cells;
}

constexpr const char* kCsvFiles[] = {"steps.csv", "summary.csv", "kernels.csv", "power.csv"};

// One source, read whole and checked before anything is written.
struct Source {
  fs::path dir;
  nlohmann::json manifest;
  std::map<std::string, std::vector<std::string>> records;  // file → header, rows
};

// UsageError when the file is missing, has no header, or a row's cell count differs from
// the header's (a torn or hand-edited row).
std::vector<std::string> read_csv_records(const fs::path& file) {
  if (!fs::is_regular_file(file)) throw UsageError(file.string() + ": missing (not a whole results directory)");
  std::vector<std::string> records = csv_records(read_file(file));
  if (records.empty()) throw UsageError(file.string() + ": empty (no header)");
  const size_t columns = cell_count(records[0]);
  for (size_t i = 1; i < records.size(); ++i)
    if (cell_count(records[i]) != columns)
      throw UsageError(file.string() + ": row " + std::to_string(i) + " has " +
                       std::to_string(cell_count(records[i])) + " cells, the header has " +
                       std::to_string(columns) + " (a damaged file)");
  return records;
}

Source read_source(const fs::path& dir, bool include_incomplete) {
  Source src{dir, {}, {}};
  if (!fs::is_directory(dir)) throw UsageError(dir.string() + " is not a results directory (no such directory)");
  const fs::path manifest = dir / "manifest.json";
  if (!fs::exists(manifest)) throw UsageError(dir.string() + " is not a results directory (no manifest.json)");
  src.manifest = nlohmann::json::parse(read_file(manifest), nullptr, false);
  if (src.manifest.is_discarded() || !src.manifest.is_object())
    throw UsageError(manifest.string() + ": not valid JSON (a damaged results directory)");
  const auto completed = src.manifest.find("completed");
  if (!include_incomplete && (completed == src.manifest.end() || *completed != true))
    throw UsageError(dir.string() + " is incomplete (interrupted or killed: its manifest does not say "
                     "completed); pass --include-incomplete to merge it anyway");
  for (const char* name : kCsvFiles) src.records[name] = read_csv_records(dir / name);
  return src;
}

// The sources in order; UsageError for one given twice (by any spelling of its path).
std::vector<Source> read_sources(const std::vector<std::string>& inputs, bool include_incomplete) {
  std::vector<Source> sources;
  std::set<fs::path> seen;
  for (const auto& in : inputs) {
    fs::path dir = fs::path(in).lexically_normal();
    if (dir.filename().empty()) dir = dir.parent_path();
    std::error_code ec;
    const fs::path identity = fs::weakly_canonical(dir, ec);
    if (!seen.insert(ec ? dir : identity).second)
      throw UsageError(in + " is given twice; its rows would be merged twice");
    sources.push_back(read_source(dir, include_incomplete));
  }
  return sources;
}

// The merged file: `source` then the sources' columns, which must be the same everywhere.
std::string merged_csv(const std::string& name, const std::vector<Source>& sources) {
  const std::string& header = sources.front().records.at(name)[0];
  std::string text = "source," + header + "\n";
  for (const Source& src : sources) {
    const std::vector<std::string>& records = src.records.at(name);
    if (records[0] != header)
      throw UsageError((src.dir / name).string() + " has different columns from " +
                       (sources.front().dir / name).string() + "; cannot merge");
    const std::string label = csv_escape(src.dir.filename().string());
    for (size_t i = 1; i < records.size(); ++i) text += label + "," + records[i] + "\n";
  }
  return text;
}

// Writes every file into a staging directory beside out and renames it to out at the end:
// a failure leaves no --out behind (the staging directory is removed).
void write_merged(const fs::path& out, const std::map<std::string, std::string>& files) {
  const fs::path staging = out.string() + ".partial-" + std::to_string(getpid());
  std::error_code ec;
  if (out.has_parent_path()) fs::create_directories(out.parent_path(), ec);
  if (!fs::create_directory(staging, ec) || ec)
    throw UsageError("--out " + out.string() + ": cannot create " + staging.string() + ": " +
                     (ec ? ec.message() : "it exists"));
  try {
    for (const auto& [name, contents] : files)
      write_output_file("merged file", (staging / name).string(), contents);
    fs::rename(staging, out);  // an empty --out is replaced
  } catch (...) {
    fs::remove_all(staging, ec);
    throw;
  }
}

void run_merge(const std::string& out_dir, const std::vector<std::string>& inputs,
               bool include_incomplete) {
  fs::path out = fs::path(out_dir).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();
  if (fs::exists(out) && !(fs::is_directory(out) && fs::is_empty(out)))
    throw UsageError("--out " + out_dir + " exists and is not an empty directory");
  const std::vector<Source> sources = read_sources(inputs, include_incomplete);
  std::map<std::string, std::string> files;
  for (const char* name : kCsvFiles) files[name] = merged_csv(name, sources);
  nlohmann::json manifest = {{"tool", "attnscope"}, {"merged_from", nlohmann::json::array()}};
  for (const Source& src : sources)
    manifest["merged_from"].push_back({{"source", src.dir.filename().string()}, {"manifest", src.manifest}});
  files["manifest.json"] = manifest.dump(2) + "\n";
  write_merged(out, files);
  std::cout << "merged " << sources.size() << " results directories into " << out.string() << "\n";
}

}  // namespace

void add_merge_command(CLI::App& app) {
  auto out = std::make_shared<std::string>();
  auto inputs = std::make_shared<std::vector<std::string>>();
  auto* cmd = app.add_subcommand("merge", "Combine results directories into one");
  cmd->add_option("--out", *out, "The merged results directory (created)")->required();
  auto include_incomplete = std::make_shared<bool>(false);
  cmd->add_option("dirs", *inputs, "Results directories to combine")->required()->expected(1, -1);
  cmd->add_flag("--include-incomplete", *include_incomplete,
                "Also merge directories of interrupted or killed benchmarks");
  cmd->callback([out, inputs, include_incomplete] { run_merge(*out, *inputs, *include_incomplete); });
}

}  // namespace attnscope
