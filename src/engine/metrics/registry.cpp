#include "engine/metrics/registry.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace tessera::metrics {

namespace {

enum Type { kCounter, kGauge, kHistogram };
const char* type_name(int type) { return type == kCounter ? "counter" : type == kGauge ? "gauge" : "histogram"; }

bool valid_name(const std::string& name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// Numbers as Prometheus reads them: shortest round-trip text, +Inf, -Inf, NaN.
std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

// Label values escape backslash, double quote and newline; help text backslash and newline.
std::string escape(const std::string& s, bool quote) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '"' && quote) out += "\\\"";
    else out += c;
  }
  return out;
}

std::string label_text(const Labels& labels, const std::string& extra_name = "", const std::string& extra_value = "") {
  std::string out;
  for (const auto& [name, value] : labels) out += (out.empty() ? "" : ",") + name + "=\"" + escape(value, true) + "\"";
  if (!extra_name.empty()) out += (out.empty() ? "" : ",") + extra_name + "=\"" + extra_value + "\"";
  return out.empty() ? "" : "{" + out + "}";
}

}  // namespace

void Counter::inc(double amount) {
  TS_CHECK(amount >= 0, "a counter only goes up (got an increment of {})", amount);
  value_.fetch_add(amount, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  // Buckets are "less than or equal": the first bound >= value takes it.
  const size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  std::lock_guard lock(mutex_);
  ++counts_[bucket];
  sum_ += value;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  std::lock_guard lock(mutex_);
  uint64_t running = 0;
  for (uint64_t c : counts_) s.cumulative.push_back(running += c);
  s.count = running;
  s.sum = sum_;
  return s;
}

std::vector<double> latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 30, 60};
}

struct Registry::Family {
  std::string name, help;
  int type;
  std::vector<double> bounds;
  // Series in first-asked order; unique_ptr keeps references stable as the vectors grow.
  std::vector<std::pair<Labels, std::unique_ptr<Counter>>> counters;
  std::vector<std::pair<Labels, std::unique_ptr<Gauge>>> gauges;
  std::vector<std::pair<Labels, std::unique_ptr<Histogram>>> histograms;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Family& Registry::family(const std::string& name, const std::string& help, int type,
                                   const std::vector<double>* bounds) {
  TS_CHECK(valid_name(name, true), "metric name '{}': expected letters, digits, '_' or ':', not starting with a digit",
           name);
  for (auto& f : families_) {
    if (f->name != name) continue;
    TS_CHECK(f->type == type, "metric '{}' is a {}, asked for as a {}", name, type_name(f->type), type_name(type));
    TS_CHECK(!bounds || f->bounds == *bounds, "histogram '{}' asked for with other bucket bounds", name);
    return *f;
  }
  if (bounds) {
    TS_CHECK(std::is_sorted(bounds->begin(), bounds->end()) &&
                 std::adjacent_find(bounds->begin(), bounds->end()) == bounds->end(),
             "histogram '{}': bucket bounds must be strictly increasing", name);
    for (double b : *bounds) TS_CHECK(std::isfinite(b), "histogram '{}': bucket bounds must be finite", name);
  }
  auto f = std::make_unique<Family>(Family{name, help, type, bounds ? *bounds : std::vector<double>{}, {}, {}, {}});
  families_.push_back(std::move(f));
  return *families_.back();
}

namespace {

void check_labels(const std::string& metric, const Labels& labels, bool histogram) {
  for (const auto& [name, value] : labels) {
    TS_CHECK(valid_name(name, false) && !name.starts_with("__"), "metric '{}': invalid label name '{}'", metric, name);
    TS_CHECK(!(histogram && name == "le"), "histogram '{}': the label 'le' is its buckets' own", metric);
  }
}

template <typename Metric, typename Make>
Metric& series(std::vector<std::pair<Labels, std::unique_ptr<Metric>>>& all, const Labels& labels, Make make) {
  for (auto& [l, m] : all)
    if (l == labels) return *m;
  all.emplace_back(labels, make());
  return *all.back().second;
}

}  // namespace

Counter& Registry::counter(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard lock(mutex_);
  check_labels(name, labels, false);
  return series(family(name, help, kCounter, nullptr).counters, labels, [] { return std::make_unique<Counter>(); });
}

Gauge& Registry::gauge(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard lock(mutex_);
  check_labels(name, labels, false);
  return series(family(name, help, kGauge, nullptr).gauges, labels, [] { return std::make_unique<Gauge>(); });
}

Histogram& Registry::histogram(const std::string& name, const std::string& help, const std::vector<double>& bounds,
                               const Labels& labels) {
  std::lock_guard lock(mutex_);
  check_labels(name, labels, true);
  return series(family(name, help, kHistogram, &bounds).histograms, labels,
                [&] { return std::make_unique<Histogram>(bounds); });
}

void Registry::on_collect(std::function<void()> refresh) {
  std::lock_guard lock(mutex_);
  collectors_.push_back(std::move(refresh));
}

std::string Registry::text() const {
  std::vector<std::function<void()>> collectors;
  {
    std::lock_guard lock(mutex_);
    collectors = collectors_;
  }
  for (const auto& refresh : collectors) refresh();  // unlocked: they update (and may add) metrics

  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& f : families_) {
    out += "# HELP " + f->name + " " + escape(f->help, false) + "\n";
    out += "# TYPE " + f->name + " " + type_name(f->type) + "\n";
    for (const auto& [labels, c] : f->counters) out += f->name + label_text(labels) + " " + number(c->value()) + "\n";
    for (const auto& [labels, g] : f->gauges) out += f->name + label_text(labels) + " " + number(g->value()) + "\n";
    for (const auto& [labels, h] : f->histograms) {
      const Histogram::Snapshot s = h->snapshot();
      for (size_t i = 0; i <= s.bounds.size(); ++i) {
        const std::string le = i < s.bounds.size() ? number(s.bounds[i]) : "+Inf";
        out += f->name + "_bucket" + label_text(labels, "le", le) + " " + std::to_string(s.cumulative[i]) + "\n";
      }
      out += f->name + "_sum" + label_text(labels) + " " + number(s.sum) + "\n";
      out += f->name + "_count" + label_text(labels) + " " + std::to_string(s.count) + "\n";
    }
  }
  return out;
}

}  // namespace tessera::metrics
