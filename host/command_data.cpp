// `attnscope data --export PREFIX --tokens N`: the built-in synthetic corpus's training and
// validation streams as llm.c shards, so another trainer (or attnscope itself, through
// --data/--val-data) replays exactly the tokens a run on the built-in corpus reads.
#include <cstdio>
#include <memory>

#include "host/commands.hpp"
#include "host/options.hpp"
#include "model/data.hpp"

namespace attnscope {
namespace {

struct DataCommand {
  std::string prefix;
  size_t tokens = 0;
  uint64_t seed = 1337;  // train's and bench's --seed default (TrainSettings::seed)
};

void export_stream(const DataCommand& cmd, bool validation) {
  const std::string path = cmd.prefix + (validation ? "_val.bin" : "_train.bin");
  write_shard(path, synthetic_tokens(cmd.seed, validation, cmd.tokens));
  std::printf("%s: %zu tokens, the built-in corpus's %s stream (seed %llu)\n", path.c_str(), cmd.tokens,
              validation ? "validation" : "training", static_cast<unsigned long long>(cmd.seed));
}

}  // namespace

void add_data_command(CLI::App& app) {
  auto cmd = std::make_shared<DataCommand>();
  auto* sub = app.add_subcommand("data", "Export the built-in synthetic corpus as llm.c token shards");
  sub->add_option("--export", cmd->prefix, "Write PREFIX_train.bin and PREFIX_val.bin")->required();
  sub->add_option("--tokens", cmd->tokens, "Tokens per stream; a run of S steps of B×T reads "
                  "S·B·T+1 training tokens and val-batches·B·T+1 validation tokens")
      ->required()
      ->check(CLI::Range(size_t(2), size_t(INT32_MAX)));
  sub->add_option("--seed", cmd->seed, "The corpus's seed (train's --seed)")->capture_default_str();
  sub->callback([cmd] {
    export_stream(*cmd, false);
    export_stream(*cmd, true);
  });
}

}  // namespace attnscope
