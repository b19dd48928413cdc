#include "model/synthetic_corpus.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

namespace attnscope {

uint64_t SplitMix64::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

size_t WeightedChoice::draw(SplitMix64& rng) const {
  const uint32_t r = rng.below(total());
  return size_t(std::upper_bound(cumulative.begin(), cumulative.end(), r) - cumulative.begin());
}

static WeightedChoice from_weights(const std::vector<uint32_t>& weights) {
  WeightedChoice choice;
  uint32_t sum = 0;
  for (uint32_t w : weights) choice.cumulative.push_back(sum += w);
  return choice;
}

namespace {
constexpr int kLexiconSize = 512;
constexpr char kConsonants[] = "bdfghklmnprstvz";
constexpr char kVowels[] = "aeiou";
constexpr int kMinSentenceWords = 4, kMaxSentenceWords = 14;
constexpr int kMinDocumentSentences = 8, kMaxDocumentSentences = 24;
// A fresh word is one of the previous word's favoured successors 3 times in 4.
constexpr uint32_t kSuccessorOdds = 3, kOddsTotal = 4;
// A sentence repeats a recent one 2 times in 4.
constexpr uint32_t kCopyOdds = 2;

std::string draw_word(SplitMix64& rng) {
  std::string word;
  const int syllables = 1 + int(rng.below(3));
  for (int s = 0; s < syllables; ++s) {
    word += kConsonants[rng.below(sizeof(kConsonants) - 1)];
    word += kVowels[rng.below(sizeof(kVowels) - 1)];
    if (rng.below(3) == 0) word += kConsonants[rng.below(sizeof(kConsonants) - 1)];
  }
  return word;
}
}  // namespace

SyntheticCorpus::SyntheticCorpus(uint64_t language_seed, uint64_t stream_seed)
    // Scrambled so that equal language and stream seeds still give unrelated sequences.
    : rng_(stream_seed ^ 0x5EED5EED5EED5EEDull) {
  build_language(language_seed);
}

void SyntheticCorpus::build_language(uint64_t language_seed) {
  SplitMix64 rng(language_seed);
  std::set<std::string> seen;
  while (int(words_.size()) < kLexiconSize) {
    std::string word = draw_word(rng);
    if (seen.insert(word).second) words_.push_back(word);
  }
  std::vector<uint32_t> zipf(kLexiconSize);
  for (int rank = 0; rank < kLexiconSize; ++rank) zipf[rank] = 1000000u / uint32_t(rank + 1);
  word_frequency_ = from_weights(zipf);
  successor_rank_ = from_weights({32, 16, 8, 4, 2, 2});
  successors_.resize(kLexiconSize);
  for (auto& next : successors_)
    for (int& w : next) w = int(word_frequency_.draw(rng));
}

int SyntheticCorpus::draw_next_word(int previous) {
  const auto& favoured = successors_[previous];
  const int word = rng_.below(kOddsTotal) < kSuccessorOdds
                       ? favoured[successor_rank_.draw(rng_)]
                       : int(word_frequency_.draw(rng_));
  // The word's probability under both branches (a word may be favoured and frequent).
  double favoured_p = 0;
  for (int k = 0; k < kSuccessors; ++k)
    if (favoured[k] == word) favoured_p += double(successor_rank_.weight(k)) / successor_rank_.total();
  const double frequency_p = double(word_frequency_.weight(word)) / word_frequency_.total();
  const double p = (kSuccessorOdds * favoured_p + (kOddsTotal - kSuccessorOdds) * frequency_p) / kOddsTotal;
  source_nats_ -= std::log(p);
  return word;
}

std::string SyntheticCorpus::draw_sentence() {
  const int span = kMaxSentenceWords - kMinSentenceWords + 1;
  const int length = kMinSentenceWords + int(rng_.below(span));
  source_nats_ += std::log(double(span));
  std::string sentence;
  for (int i = 0; i < length; ++i) {
    previous_word_ = draw_next_word(previous_word_);
    sentence += words_[previous_word_];
    sentence += i + 1 < length ? ' ' : '.';
  }
  sentence[0] = char(sentence[0] - 'a' + 'A');
  return sentence + ' ';
}

void SyntheticCorpus::append_document(std::vector<uint8_t>& out) {
  const int span = kMaxDocumentSentences - kMinDocumentSentences + 1;
  const int sentences = kMinDocumentSentences + int(rng_.below(span));
  source_nats_ += std::log(double(span));
  // Recent sentences with their last word, from which the word chain goes on after a copy.
  std::vector<std::pair<std::string, int>> recent;
  for (int s = 0; s < sentences; ++s) {
    bool copy = false;
    if (!recent.empty()) {
      copy = rng_.below(kOddsTotal) < kCopyOdds;
      source_nats_ -= std::log(double(copy ? kCopyOdds : kOddsTotal - kCopyOdds) / kOddsTotal);
    }
    if (copy) {
      const auto [sentence, last_word] = recent[rng_.below(uint32_t(recent.size()))];
      source_nats_ += std::log(double(recent.size()));
      recent.emplace_back(sentence, last_word);
      previous_word_ = last_word;
    } else {
      std::string sentence = draw_sentence();  // moves previous_word_ on
      recent.emplace_back(std::move(sentence), previous_word_);
    }
    out.insert(out.end(), recent.back().first.begin(), recent.back().first.end());
    if (int(recent.size()) > kRecentSentences) recent.erase(recent.begin());
  }
  out.back() = '\n';  // in place of the last sentence's trailing space
}

}  // namespace attnscope
