// Factories of the attention variants, one per file in model/attention/.
#pragma once
#include <memory>

#include "model/attention_variant.hpp"

namespace attnscope {

std::unique_ptr<AttentionVariant> make_baseline(const AttentionOptions&);
std::unique_ptr<AttentionVariant> make_sdpa(const AttentionOptions&);
std::unique_ptr<AttentionVariant> make_flash(const AttentionOptions&);
std::unique_ptr<AttentionVariant> make_gqa(const AttentionOptions&);
std::unique_ptr<AttentionVariant> make_mla(const AttentionOptions&);
std::unique_ptr<AttentionVariant> make_linear(const AttentionOptions&);
std::unique_ptr<AttentionVariant> make_sliding_window(const AttentionOptions&);
std::unique_ptr<AttentionVariant> make_lsh(const AttentionOptions&);

}  // namespace attnscope
