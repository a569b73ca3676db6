#include "io/tokenizer/post_processor.h"

#include <map>
#include <string>

namespace tessera::tok {

namespace {

class Template : public PostProcessor {
 public:
  explicit Template(const JsonView& j) {
    if (!j.at("special_tokens").is_object()) fail("{}.special_tokens: expected an object", j.path());
    std::map<std::string, std::vector<int32_t>> specials;
    for (const auto& [name, value] : j.at("special_tokens").raw().items()) {
      JsonView v(value, j.path() + ".special_tokens." + name);
      std::vector<int32_t> ids;
      for (const auto& id : v.at("ids").items()) ids.push_back(id.id());
      specials[name] = std::move(ids);
    }
    single_ = parse(j.at("single"), specials);
    pair_ = parse(j.at("pair"), specials);
  }

  void apply(Encodings& enc, bool add_special_tokens) const override {
    if (!add_special_tokens) return;
    const auto& items = enc.size() == 1 ? single_ : pair_;
    std::vector<int32_t> out;
    for (const Item& it : items) {
      if (it.sequence < 0) {
        out.insert(out.end(), it.ids.begin(), it.ids.end());
      } else {
        TS_CHECK(static_cast<size_t>(it.sequence) < enc.size(), "TemplateProcessing: single template uses sequence B");
        out.insert(out.end(), enc[it.sequence].begin(), enc[it.sequence].end());
      }
    }
    enc.assign(1, std::move(out));
  }

 private:
  struct Item {
    int sequence;              // 0 for $A, 1 for $B, -1 for special tokens
    std::vector<int32_t> ids;  // the special token's ids
  };

  static std::vector<Item> parse(const JsonView& list, const std::map<std::string, std::vector<int32_t>>& specials) {
    std::vector<Item> items;
    for (const auto& piece : list.items()) {
      if (auto seq = piece.find("Sequence")) {
        const std::string& id = seq->at("id").str();
        if (id != "A" && id != "B") fail("{}.id: expected \"A\" or \"B\", got '{}'", seq->path(), id);
        items.push_back({id == "A" ? 0 : 1, {}});
      } else if (auto sp = piece.find("SpecialToken")) {
        const std::string& id = sp->at("id").str();
        auto it = specials.find(id);
        if (it == specials.end()) fail("{}: special token '{}' is not in special_tokens", sp->path(), id);
        items.push_back({-1, it->second});
      } else {
        fail("{}: expected a 'Sequence' or 'SpecialToken' entry", piece.path());
      }
    }
    return items;
  }

  std::vector<Item> single_, pair_;
};

class NoOp : public PostProcessor {
 public:
  void apply(Encodings&, bool) const override {}
};

class Sequence : public PostProcessor {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  void apply(Encodings& enc, bool add_special_tokens) const override {
    for (const auto& s : steps_) s->apply(enc, add_special_tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const JsonView& j) {
  const std::string type = j.type();
  if (type == "TemplateProcessing") return std::make_unique<Template>(j);
  if (type == "ByteLevel") return std::make_unique<NoOp>();  // only adjusts offsets
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (const auto& item : j.at("processors").items()) steps.push_back(make_post_processor(item));
    return std::make_unique<Sequence>(std::move(steps));
  }
  fail("unsupported post_processor type '{}' at {}", type, j.path());
}

}  // namespace tessera::tok
