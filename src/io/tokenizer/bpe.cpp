#include "io/tokenizer/bpe.h"

#include <fmt/format.h>

#include <atomic>
#include <queue>

#include "io/tokenizer/utf8.h"

namespace tessera::tok {

namespace {

std::atomic<uint64_t> next_uid{1};

// Per-thread cache of pre-token -> ids for the models this thread used last.
struct WordCache {
  static constexpr size_t kMaxEntries = 1 << 16;
  static constexpr size_t kMaxWordBytes = 256;
  uint64_t owner = 0;
  std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
};

WordCache& cache_for(uint64_t owner) {
  thread_local WordCache caches[4];
  thread_local size_t next_victim = 0;
  for (auto& c : caches)
    if (c.owner == owner) return c;
  WordCache& c = caches[next_victim++ % 4];
  c.owner = owner;
  c.map.clear();
  return c;
}

struct Symbol {
  int32_t id;
  int32_t prev, next;  // neighbours in the word, -1 at the ends
  bool alive;
};

struct Candidate {
  int32_t rank, pos, new_id;
  // std::priority_queue pops the largest: lowest rank first, then leftmost.
  bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

// Priority queue whose storage survives between words, so merging allocates nothing.
struct CandidateQueue : std::priority_queue<Candidate> {
  void reset() { c.clear(); }
};

}  // namespace

Bpe::Bpe(const JsonView& model) : uid_(next_uid++) {
  if (auto d = model.find("dropout"); d && !(d->raw().is_number() && d->raw().get<double>() == 0.0))
    fail("{}: BPE dropout is not supported (encoding must be deterministic)", d->path());
  byte_fallback_ = model.bool_or("byte_fallback", false);
  fuse_unk_ = model.bool_or("fuse_unk", false);
  ignore_merges_ = model.bool_or("ignore_merges", false);
  prefix_ = model.str_or("continuing_subword_prefix", "");
  suffix_ = model.str_or("end_of_word_suffix", "");

  JsonView vocab = model.at("vocab");
  if (!vocab.is_object()) fail("{}: expected an object of token -> id", vocab.path());
  vocab_.reserve(vocab.raw().size());
  std::vector<bool> taken;
  for (const auto& [token, id_json] : vocab.raw().items()) {
    int32_t id = JsonView(id_json, vocab.path() + "[\"" + token + "\"]").id();
    if (!vocab_.emplace(token, id).second) fail("{}: duplicate token '{}'", vocab.path(), token);
    if (static_cast<size_t>(id) >= id_to_token_.size()) {
      id_to_token_.resize(static_cast<size_t>(id) + 1);
      taken.resize(id_to_token_.size());
    }
    if (taken[id]) fail("{}: id {} is given to both '{}' and '{}'", vocab.path(), id, id_to_token_[id], token);
    taken[id] = true;
    id_to_token_[id] = token;
  }

  if (auto unk = model.find("unk_token")) {
    auto it = vocab_.find(unk->str());
    if (it == vocab_.end()) fail("{}: unk token '{}' is not in the vocabulary", unk->path(), unk->str());
    unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }

  auto merges = model.at("merges").items();
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const JsonView& m = merges[rank];
    std::string a, b;
    // Like `tokenizers`, all merges must have the same form.
    if (m.is_string() != merges[0].is_string())
      fail("{}: merges mix the \"a b\" and [\"a\", \"b\"] forms", m.path());
    if (m.is_string()) {  // "a b"
      const std::string& s = m.str();
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail("{}: merge '{}' is not two tokens separated by one space", m.path(), s);
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else {  // ["a", "b"]
      auto parts = m.items();
      if (parts.size() != 2) fail("{}: a merge must have two tokens", m.path());
      a = parts[0].str();
      b = parts[1].str();
    }
    std::string merged = a + (b.compare(0, prefix_.size(), prefix_) == 0 ? b.substr(prefix_.size()) : b);
    auto ia = vocab_.find(a), ib = vocab_.find(b), im = vocab_.find(merged);
    if (ia == vocab_.end()) fail("{}: merge token '{}' is not in the vocabulary", m.path(), a);
    if (ib == vocab_.end()) fail("{}: merge token '{}' is not in the vocabulary", m.path(), b);
    if (im == vocab_.end()) fail("{}: merged token '{}' is not in the vocabulary", m.path(), merged);
    merges_.insert(ia->second, ib->second, {static_cast<int32_t>(rank), im->second});
  }
}

std::optional<int32_t> Bpe::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

void Bpe::encode(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (word.size() > WordCache::kMaxWordBytes) {
    merge_word(word, out);
    return;
  }
  WordCache& cache = cache_for(uid_);
  if (auto it = cache.map.find(word); it != cache.map.end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
    return;
  }
  size_t first = out.size();
  merge_word(word, out);
  if (cache.map.size() >= WordCache::kMaxEntries) cache.map.clear();
  cache.map.emplace(std::string(word), std::vector<int32_t>(out.begin() + first, out.end()));
}

void Bpe::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  thread_local std::vector<Symbol> syms;
  thread_local CandidateQueue queue;
  thread_local std::string key;
  syms.clear();
  queue.reset();

  auto add = [&](int32_t id) {
    int32_t n = static_cast<int32_t>(syms.size());
    syms.push_back({id, n - 1, -1, true});
    if (n > 0) syms[n - 1].next = n;
  };
  // Unknown characters wait here so that fuse_unk can join neighbouring ones.
  bool unk_pending = false;
  for (size_t i = 0; i < word.size();) {
    size_t begin = i;
    i += utf8_seq_len(static_cast<unsigned char>(word[i]));
    if (i > word.size()) i = word.size();
    std::string_view ch = word.substr(begin, i - begin);
    const std::string* lookup_key = nullptr;
    if ((begin > 0 && !prefix_.empty()) || (i == word.size() && !suffix_.empty())) {
      key.clear();
      if (begin > 0) key += prefix_;
      key += ch;
      if (i == word.size()) key += suffix_;
      lookup_key = &key;
    }
    std::string_view s = lookup_key ? std::string_view(*lookup_key) : ch;
    if (auto it = vocab_.find(s); it != vocab_.end()) {
      if (unk_pending) add(*unk_id_), unk_pending = false;
      add(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char c : s) all = all && byte_ids_[c] >= 0;
      if (all) {
        // Like `tokenizers`, byte tokens do not flush a pending unk.
        for (unsigned char c : s) add(byte_ids_[c]);
        continue;
      }
    }
    if (unk_id_) {
      if (unk_pending && !fuse_unk_) add(*unk_id_);
      unk_pending = true;
    }
    // Without an unk token the character is dropped, as `tokenizers` does.
  }
  if (unk_pending) add(*unk_id_);

  for (size_t k = 0; k + 1 < syms.size(); ++k)
    if (const auto* m = merges_.find(syms[k].id, syms[k + 1].id))
      queue.push({m->rank, static_cast<int32_t>(k), m->id});

  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol& left = syms[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = syms[left.next];
    const auto* m = merges_.find(left.id, right.id);
    if (!m || m->id != top.new_id) continue;  // stale: a neighbour changed since it was queued
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) syms[right.next].prev = top.pos;
    if (left.prev >= 0)
      if (const auto* p = merges_.find(syms[left.prev].id, left.id)) queue.push({p->rank, left.prev, p->id});
    if (left.next >= 0)
      if (const auto* n = merges_.find(left.id, syms[left.next].id)) queue.push({n->rank, top.pos, n->id});
  }
  for (const Symbol& s : syms)
    if (s.alive) out.push_back(s.id);
}

}  // namespace tessera::tok
