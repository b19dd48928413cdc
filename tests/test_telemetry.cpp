// Telemetry: PCI address matching, the sysfs sources on fixture trees built here (RAPL
// zones, wraps, unreadable counters; amdgpu hwmon), the counter checks, the series
// integral against an analytic curve, window arithmetic, live windows over counters
// that a test thread advances at a known rate, glitching and frozen counters, the
// sampler's own cost, the CSV/JSON writers and the `attnscope telemetry` command.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "host/runtime/error.hpp"
#include "telemetry/amdgpu_source.hpp"
#include "telemetry/checked_counter.hpp"
#include "telemetry/nvml_source.hpp"
#include "telemetry/pci_address.hpp"
#include "telemetry/power_csv.hpp"
#include "telemetry/power_series.hpp"
#include "telemetry/rapl_source.hpp"
#include "telemetry/sysfs_files.hpp"
#include "telemetry/telemetry.hpp"
#include "telemetry/telemetry_json.hpp"
#include "tests/test_support.hpp"

namespace attnscope {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A temporary directory tree standing in for "/" (files go under <root>/sys/...).
class FixtureTree {
 public:
  FixtureTree() {
    std::string pattern = (fs::temp_directory_path() / "attnscope-telemetry-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    root_ = pattern;
  }
  ~FixtureTree() {
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }
  const fs::path& root() const { return root_; }
  fs::path sys() const { return root_ / "sys"; }

  // Writes through a temporary file and a rename, so a concurrent reader sees the old
  // or the new content, never a torn one (as sysfs guarantees for a single read).
  void write(const fs::path& relative, const std::string& content) const {
    fs::path path = root_ / relative;
    fs::create_directories(path.parent_path());
    fs::path temporary = path;
    temporary += ".tmp";
    std::ofstream(temporary) << content << "\n";
    fs::rename(temporary, path);
  }
  void write(const fs::path& relative, uint64_t value) const { write(relative, std::to_string(value)); }

 private:
  fs::path root_;
};

const fs::path kPowercap = "sys/class/powercap";

void add_rapl_zone(const FixtureTree& tree, const fs::path& zone, const std::string& name, uint64_t energy_uj,
                   uint64_t max_range_uj = 262143328850ull) {
  tree.write(kPowercap / zone / "name", name);
  tree.write(kPowercap / zone / "energy_uj", energy_uj);
  tree.write(kPowercap / zone / "max_energy_range_uj", max_range_uj);
}

// An amdgpu card: cardN/device links to a PCI device directory named by its address.
void add_amdgpu_card(const FixtureTree& tree, const std::string& card, const std::string& pci,
                     bool with_average, bool link_device = true) {
  fs::path device = fs::path("sys/class/drm") / card / "device";
  if (link_device) {
    fs::path pci_dir = tree.root() / "sys/devices/pci0000:00" / pci;
    fs::create_directories(pci_dir);
    fs::create_directories((tree.root() / device).parent_path());
    fs::create_directory_symlink(pci_dir, tree.root() / device);
  } else {
    tree.write(device / "uevent", "DRIVER=amdgpu\nPCI_CLASS=30000\nPCI_SLOT_NAME=" + pci + "\n");
  }
  if (with_average) tree.write(device / "hwmon/hwmon3/power1_average", uint64_t(45000000));
  tree.write(device / "hwmon/hwmon3/power1_input", uint64_t(52500000));
  tree.write(device / "hwmon/hwmon3/temp1_input", uint64_t(61000));
  tree.write(device / "hwmon/hwmon3/freq1_input", uint64_t(2100000000));
  tree.write(device / "mem_info_vram_used", uint64_t(3) << 30);
  tree.write(device / "gpu_busy_percent", uint64_t(97));
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

PowerSample sample_at(double time_s, double watts, std::optional<uint64_t> memory_used_bytes = std::nullopt) {
  PowerSample sample;
  sample.time_s = time_s;
  sample.watts = watts;
  sample.memory_used_bytes = memory_used_bytes;
  return sample;
}

// --- PCI addresses -------------------------------------------------------------------

TEST(PciAddress, NvmlAndSysfsSpellingsAreTheSameDevice) {
  auto sysfs = parse_pci_address("0000:65:00.0");
  auto nvml = parse_pci_address("00000000:65:00.0");
  auto upper = parse_pci_address("0000:B3:1F.7");
  ASSERT_TRUE(sysfs && nvml && upper);
  EXPECT_EQ(*sysfs, *nvml);
  EXPECT_EQ(*parse_pci_address("65:00.0"), *sysfs);
  EXPECT_EQ(nvml_pci_string(*sysfs), "00000000:65:00.0");
  EXPECT_EQ(sysfs_pci_string(*nvml), "0000:65:00.0");
  EXPECT_EQ(sysfs_pci_string(*upper), "0000:b3:1f.7");
  EXPECT_NE(*parse_pci_address("0001:65:00.0"), *sysfs);
}

TEST(PciAddress, MalformedIdsAreRejected) {
  for (const char* bad : {"", "card0", "0000:65:00", "0000:65:00.8", "0000:65:20.0", "0000:165:00.0",
                          "000000000:65:00.0", "0000:65:00.0.1", "zz:00.0"})
    EXPECT_FALSE(parse_pci_address(bad)) << bad;
}

// --- sysfs root ----------------------------------------------------------------------

TEST(SysfsRoot, AcceptsAFileSystemRootOrASysfsMount) {
  FixtureTree tree;
  fs::create_directories(tree.sys() / "class");
  EXPECT_EQ(resolve_sysfs_dir(tree.root().string()), tree.sys());
  EXPECT_EQ(resolve_sysfs_dir(tree.sys().string()), tree.sys());
  EXPECT_EQ(resolve_sysfs_dir("/"), fs::path("/sys"));
}

// --- RAPL ----------------------------------------------------------------------------

TEST(Rapl, SumsEveryPackageAndDramButNotCoreOrPsys) {
  FixtureTree tree;
  add_rapl_zone(tree, "intel-rapl:0", "package-0", 1000000);
  add_rapl_zone(tree, "intel-rapl:0/intel-rapl:0:0", "core", 500000);
  add_rapl_zone(tree, "intel-rapl:0/intel-rapl:0:1", "dram", 200000);
  add_rapl_zone(tree, "intel-rapl:1", "package-1", 3000000);
  add_rapl_zone(tree, "intel-rapl:2", "psys", 0);
  DetectedSource rapl = detect_rapl(tree.sys());
  ASSERT_TRUE(rapl.status.available) << rapl.status.detail;
  EXPECT_TRUE(contains(rapl.status.detail, "package-0 (intel-rapl:0), dram (intel-rapl:0:1), package-1 (intel-rapl:1)"))
      << rapl.status.detail;
  EXPECT_TRUE(contains(rapl.status.detail, "core (intel-rapl:0:0)")) << rapl.status.detail;

  TelemetryClock clock;
  auto before = rapl.source->read_counter(clock);
  ASSERT_TRUE(before);
  std::this_thread::sleep_for(20ms);
  tree.write(kPowercap / "intel-rapl:0/energy_uj", uint64_t(1000000 + 1000000));    // +1 J
  tree.write(kPowercap / "intel-rapl:0/intel-rapl:0:1/energy_uj", uint64_t(450000));  // +0.25 J
  tree.write(kPowercap / "intel-rapl:0/intel-rapl:0:0/energy_uj", uint64_t(9000000));  // not summed
  tree.write(kPowercap / "intel-rapl:1/energy_uj", uint64_t(3000000 + 2000000));    // +2 J
  tree.write(kPowercap / "intel-rapl:2/energy_uj", uint64_t(7000000));              // not summed
  auto after = rapl.source->read_counter(clock);
  ASSERT_TRUE(after);
  EXPECT_NEAR(after->joules - before->joules, 3.25, 1e-9);
  EXPECT_EQ(after->glitches, 0u);
}

TEST(Rapl, CounterWrapInsideAWindowIsCounted) {
  FixtureTree tree;
  add_rapl_zone(tree, "intel-rapl:0", "package-0", 9500000, 10000000);  // 9.5 J of a 10 J range
  DetectedSource rapl = detect_rapl(tree.sys());
  ASSERT_TRUE(rapl.status.available) << rapl.status.detail;
  TelemetryClock clock;
  auto before = rapl.source->read_counter(clock);
  std::this_thread::sleep_for(20ms);
  tree.write(kPowercap / "intel-rapl:0/energy_uj", uint64_t(700000));  // wrapped: 0.5 J + 0.7 J
  auto after = rapl.source->read_counter(clock);
  ASSERT_TRUE(before && after);
  EXPECT_NEAR(after->joules - before->joules, 1.2, 1e-9);
  EXPECT_EQ(after->glitches, 0u);
}

TEST(Rapl, UnreadableEnergyCounterMakesItUnavailableWithTheReason) {
  FixtureTree tree;
  add_rapl_zone(tree, "intel-rapl:0", "package-0", 1000);
  fs::remove(tree.root() / kPowercap / "intel-rapl:0/energy_uj");
  fs::create_directory(tree.root() / kPowercap / "intel-rapl:0/energy_uj");  // unreadable as a file, even by root
  DetectedSource rapl = detect_rapl(tree.sys());
  EXPECT_FALSE(rapl.status.available);
  EXPECT_FALSE(rapl.source);
  EXPECT_TRUE(contains(rapl.status.detail, "intel-rapl:0/energy_uj")) << rapl.status.detail;
  EXPECT_TRUE(contains(rapl.status.detail, "Is a directory")) << rapl.status.detail;
}

TEST(Rapl, PermissionDeniedNamesTheRootOnlyRule) {
  if (geteuid() == 0) GTEST_SKIP() << "running as root: chmod 000 does not stop root from reading";
  FixtureTree tree;
  add_rapl_zone(tree, "intel-rapl:0", "package-0", 1000);
  ASSERT_EQ(chmod((tree.root() / kPowercap / "intel-rapl:0/energy_uj").c_str(), 0), 0);
  DetectedSource rapl = detect_rapl(tree.sys());
  EXPECT_FALSE(rapl.status.available);
  EXPECT_TRUE(contains(rapl.status.detail, "Permission denied")) << rapl.status.detail;
  EXPECT_TRUE(contains(rapl.status.detail, "root")) << rapl.status.detail;
}

TEST(Rapl, MissingPowercapIsReported) {
  FixtureTree tree;
  fs::create_directories(tree.sys() / "class");
  DetectedSource rapl = detect_rapl(tree.sys());
  EXPECT_FALSE(rapl.status.available);
  EXPECT_TRUE(contains(rapl.status.detail, "powercap")) << rapl.status.detail;
  fs::create_directories(tree.root() / kPowercap / "intel-rapl-mmio:0");
  EXPECT_TRUE(contains(detect_rapl(tree.sys()).status.detail, "no RAPL package or dram zone"));
}

// --- amdgpu --------------------------------------------------------------------------

TEST(Amdgpu, PrefersPowerAverageAndReadsTheOtherMetrics) {
  FixtureTree tree;
  add_amdgpu_card(tree, "card0", "0000:03:00.0", /*with_average=*/true);
  add_amdgpu_card(tree, "card1", "0000:83:00.0", /*with_average=*/true);
  fs::create_directories(tree.sys() / "class/drm/card1-DP-1");  // a connector, not a card
  // NVML's spelling of the address matches as well as sysfs's.
  DetectedSource gpu = detect_amdgpu(tree.sys(), "00000000:83:00.0");
  ASSERT_TRUE(gpu.status.available) << gpu.status.detail;
  EXPECT_TRUE(contains(gpu.status.detail, "card1")) << gpu.status.detail;
  EXPECT_TRUE(contains(gpu.status.power_method, "power1_average"));
  EXPECT_FALSE(gpu.status.has_energy_counter);
  TelemetryClock clock;
  auto sample = gpu.source->sample(clock);
  ASSERT_TRUE(sample);
  EXPECT_DOUBLE_EQ(sample->watts, 45.0);
  EXPECT_EQ(sample->memory_used_bytes, uint64_t(3) << 30);
  EXPECT_EQ(sample->utilization_percent, 97.0);
  EXPECT_EQ(sample->clock_mhz, 2100.0);
  EXPECT_EQ(sample->temperature_c, 61.0);
  EXPECT_FALSE(gpu.source->read_counter(clock));
}

TEST(Amdgpu, FallsBackToPowerInputAndMatchesByUevent) {
  FixtureTree tree;
  add_amdgpu_card(tree, "card0", "0000:03:00.0", /*with_average=*/false, /*link_device=*/false);
  DetectedSource gpu = detect_amdgpu(tree.sys(), "0000:03:00.0");
  ASSERT_TRUE(gpu.status.available) << gpu.status.detail;
  EXPECT_TRUE(contains(gpu.status.power_method, "power1_input"));
  TelemetryClock clock;
  auto sample = gpu.source->sample(clock);
  ASSERT_TRUE(sample);
  EXPECT_DOUBLE_EQ(sample->watts, 52.5);
}

TEST(Amdgpu, OtherDevicesAreUnavailableWithTheReason) {
  FixtureTree tree;
  add_amdgpu_card(tree, "card0", "0000:03:00.0", true);
  EXPECT_TRUE(contains(detect_amdgpu(tree.sys(), "0000:65:00.0").status.detail,
                       "no DRM card with PCI address 0000:65:00.0"));
  EXPECT_TRUE(contains(detect_amdgpu(tree.sys(), "").status.detail, "no PCI bus id"));
  fs::remove(tree.root() / "sys/class/drm/card0/device/hwmon/hwmon3/power1_input");
  fs::remove(tree.root() / "sys/class/drm/card0/device/hwmon/hwmon3/power1_average");
  EXPECT_TRUE(contains(detect_amdgpu(tree.sys(), "0000:03:00.0").status.detail, "no power1_average or power1_input"));
}

// --- NVML (the library is absent here; on an NVIDIA machine see NvmlLive) -------------

TEST(Nvml, UnavailableWithTheReason) {
  EXPECT_TRUE(contains(detect_nvml("", "libnvidia-ml.so.1").status.detail, "no PCI bus id"));
  DetectedSource missing = detect_nvml("0000:65:00.0", "libattnscope-no-such-nvml.so.1");
  EXPECT_FALSE(missing.status.available);
  EXPECT_TRUE(contains(missing.status.detail, "dlopen(libattnscope-no-such-nvml.so.1) failed"))
      << missing.status.detail;
}

// Runs where ATTNSCOPE_TEST_NVML_BUS_ID names an NVIDIA GPU (nvidia-smi --query-gpu=pci.bus_id).
TEST(NvmlLive, CounterAndInstantPowerOfARealGpu) {
  const char* bus_id = std::getenv("ATTNSCOPE_TEST_NVML_BUS_ID");
  if (!bus_id) GTEST_SKIP() << "set ATTNSCOPE_TEST_NVML_BUS_ID to test a real NVIDIA GPU";
  std::vector<DetectedSource> sources;
  sources.push_back(detect_nvml(bus_id, "libnvidia-ml.so.1"));
  const SourceStatus status = sources[0].status;
  ASSERT_TRUE(status.available) << status.detail;
  PowerSource* nvml = sources[0].source.get();
  std::cout << "  nvml: " << status.detail << "\n  power: " << status.power_method << "\n";
  ASSERT_TRUE(status.has_energy_counter && status.counter_read_s);
  TelemetryConfig config;
  config.sample_interval = 50ms;
  Telemetry telemetry(config, std::move(sources));
  // Every counter reading must be on the telemetry clock: readings out of time order
  // would make plausible steps look implausible.
  const TelemetryClock& clock = telemetry.clock();

  // How often the counter really advances: the resolution the window logic assumes.
  std::vector<double> change_times;
  uint64_t last_advances = nvml->read_counter(clock)->advances;
  for (double end = clock.now() + 1.5; clock.now() < end; std::this_thread::sleep_for(1ms)) {
    auto snapshot = nvml->read_counter(clock);
    ASSERT_TRUE(snapshot);
    if (snapshot->advances != last_advances) change_times.push_back(snapshot->time_s);
    last_advances = snapshot->advances;
  }
  ASSERT_GE(change_times.size(), 3u);
  double mean_period = (change_times.back() - change_times.front()) / double(change_times.size() - 1);
  std::cout << "  energy counter advanced " << change_times.size() << " times in 1.5 s: every "
            << mean_period * 1e3 << " ms on average\n";
  EXPECT_LE(mean_period, 1.5 * kNvmlCounterResolutionSeconds);

  SeriesCursor cursor;
  std::vector<PowerRow> rows = telemetry.samples_since(cursor);
  ASSERT_GE(rows.size(), 10u);
  const PowerSample& sample = rows.back().sample;
  EXPECT_GT(sample.watts, 5.0);
  EXPECT_TRUE(sample.memory_used_bytes && sample.utilization_percent && sample.clock_mhz && sample.temperature_c);
  std::cout << "  counter read " << *status.counter_read_s * 1e6 << " us: "
            << (status.counter_read_at_window_edges ? "read at window edges"
                                                    : "polled every " + std::to_string(*status.counter_poll_s) + " s")
            << "\n";
  auto start = std::chrono::steady_clock::now();
  telemetry.begin_window("edge cost");
  telemetry.end_window("edge cost");
  double pair_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
  std::cout << "  begin_window + end_window: " << pair_us << " us\n";
  EXPECT_LT(pair_us, 1000.0);

  // Long enough for the counter, even read up to a poll interval from each edge.
  telemetry.begin_window("long");
  std::this_thread::sleep_for(20s);
  WindowResult long_window = telemetry.end_window("long");
  const SourceEnergy* gpu = long_window.gpu();
  ASSERT_TRUE(gpu && gpu->joules && gpu->counter_joules && gpu->sampled_joules);
  std::cout << "  20 s window: counter " << *gpu->counter_joules << " J, sampled " << *gpu->sampled_joules
            << " J, disagreement " << *gpu->disagreement() * 100 << " %, method " << energy_method_name(gpu->method)
            << " " << gpu->flags.describe() << "\n";
  EXPECT_EQ(gpu->method, EnergyMethod::kCounter) << gpu->flags.describe();
  EXPECT_LT(std::abs(*gpu->disagreement()), 0.05);

  // Step-sized windows: the counter's ~100 ms granularity against the samples.
  for (double seconds : {0.05, 0.25, 0.25, 0.5, 0.5, 1.0}) {
    telemetry.begin_window("step");
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    WindowResult step = telemetry.end_window("step");
    const SourceEnergy* e = step.gpu();
    ASSERT_TRUE(e && e->joules && e->sampled_joules);
    std::cout << "  " << step.duration_s() * 1e3 << " ms window: " << energy_method_name(e->method) << " "
              << *e->joules << " J (counter " << e->counter_joules.value_or(-1) << ", sampled " << *e->sampled_joules
              << ") " << e->flags.describe() << "\n";
    EXPECT_EQ(e->flags.shorter_than_counter_resolution, seconds < kNvmlCounterResolutionSeconds);
    EXPECT_EQ(e->method, EnergyMethod::kSampled);  // too short for a 100 ms counter at 5 %
  }
  SamplerStats stats = telemetry.sampler_stats();
  std::cout << "  sampler at 50 ms: " << stats.cpu_share() * 100 << " % of one core (" << stats.ticks << " ticks, "
            << stats.missed_ticks << " missed)\n";
}

// --- counter checks ------------------------------------------------------------------

CounterSpec nvml_like_spec() {
  CounterSpec spec;
  spec.joules_per_unit = 1e-3;
  spec.max_plausible_watts = 1400;  // 700 W limit × 2
  spec.resolution_s = 0.1;
  return spec;
}

TEST(CheckedCounter, CoarseUpdatesReadOftenAreNotGlitches) {
  // A 700 W GPU whose counter moves every 100 ms, read every 10 ms: each update puts
  // 70 J into a 10 ms gap between readings (7 kW if taken at face value).
  CheckedCounter counter(nvml_like_spec());
  for (int ms = 0; ms <= 2000; ms += 10) counter.feed(uint64_t(ms / 100) * 70000, ms * 1e-3);
  EXPECT_EQ(counter.glitches(), 0u);
  EXPECT_EQ(counter.advances(), 20u);
  EXPECT_NEAR(counter.joules(), 20 * 70.0, 1e-9);
}

TEST(CheckedCounter, OneOffDropIsRejectedAndCostsNothing) {
  CheckedCounter counter(nvml_like_spec());
  counter.feed(1000000, 0.00);
  counter.feed(1010000, 0.05);  // 10 J in 50 ms: 200 W
  counter.feed(5, 0.10);        // a drop that is not a wrap (the counter has none)
  counter.feed(1030000, 0.15);
  EXPECT_EQ(counter.glitches(), 1u);
  EXPECT_NEAR(counter.joules(), 30.0, 1e-9);
}

TEST(CheckedCounter, ImplausibleJumpIsRejectedAndAPersistentOneRebased) {
  CheckedCounter counter(nvml_like_spec());
  counter.feed(0, 0.00);
  counter.feed(10000, 0.05);
  counter.feed(900000000, 0.10);  // +900 kJ in 50 ms
  counter.feed(900010000, 0.15);  // the counter stays up there: continue from it
  counter.feed(900020000, 0.20);
  EXPECT_EQ(counter.glitches(), 1u);
  EXPECT_NEAR(counter.joules(), 30.0, 1e-9);  // the jump itself is lost, the rest counted
}

TEST(CheckedCounter, WrapIsAcceptedButADropPosingAsOneIsNot) {
  CounterSpec spec;
  spec.joules_per_unit = 1e-6;
  spec.wrap_range = 262143328850ull;  // a typical package range (262 kJ)
  spec.max_plausible_watts = 1000;
  spec.resolution_s = 0.001;
  CheckedCounter counter(spec);
  counter.feed(262143328850ull - 2000000, 0.00);
  counter.feed(3000000, 0.05);  // wrapped: 5 J in 50 ms, 100 W
  EXPECT_EQ(counter.glitches(), 0u);
  EXPECT_NEAR(counter.joules(), 5.0, 1e-9);
  counter.feed(2000000, 0.10);  // 1 J back: as a wrap it would be 262 kJ in 50 ms
  EXPECT_EQ(counter.glitches(), 1u);
  EXPECT_NEAR(counter.joules(), 5.0, 1e-9);
}

// --- sampled integration -------------------------------------------------------------

TEST(PowerSeries, TrapezoidIntegralMatchesAnAnalyticCurve) {
  // P(t) = 200 + 80 sin(2πt/1.3) W sampled every 10 ms; ∫ over [0.123, 4.567].
  const double period = 1.3, kTwoPi = 2 * M_PI;
  auto power = [&](double t) { return 200 + 80 * std::sin(kTwoPi * t / period); };
  auto energy = [&](double t) { return 200 * t - 80 * period / kTwoPi * std::cos(kTwoPi * t / period); };
  PowerSeries series;
  for (int i = 0; i <= 500; ++i) series.append(sample_at(i * 0.01, power(i * 0.01)));
  double exact = energy(4.567) - energy(0.123);
  EXPECT_NEAR(*series.joules(0.123, 4.567), exact, 1e-4 * exact);
  EXPECT_NEAR(*series.peak_watts(0.0, 5.0), 280.0, 0.1);
  EXPECT_NEAR(*series.watts_at(0.125), 0.5 * (power(0.12) + power(0.13)), 1e-9);
}

TEST(PowerSeries, EdgesInterpolateInsideAndHoldOutside) {
  PowerSeries series;
  EXPECT_FALSE(series.joules(0, 1));
  series.append(sample_at(1.0, 100));
  series.append(sample_at(2.0, 200));
  series.append(sample_at(1.5, 999));  // out of order: ignored
  EXPECT_EQ(series.size(), 2u);
  EXPECT_DOUBLE_EQ(*series.joules(1.25, 1.75), 0.5 * 150);  // linear power: exact
  EXPECT_DOUBLE_EQ(*series.joules(0.0, 1.0), 100);          // held before the first sample
  EXPECT_DOUBLE_EQ(*series.joules(2.0, 2.5), 100);          // held after the last
  EXPECT_DOUBLE_EQ(*series.joules(0.5, 2.5), 50 + 150 + 100);
  EXPECT_EQ(series.count_inside(1.0, 2.0), 2u);
  EXPECT_EQ(series.count_inside(1.1, 1.9), 0u);
  EXPECT_DOUBLE_EQ(*series.peak_watts(1.1, 1.2), 120);
}

TEST(PowerSeries, PeakMemoryIsTheLargestSampleInside) {
  PowerSeries series;
  uint64_t gib = uint64_t(1) << 30;
  series.append(sample_at(1.0, 1, 5 * gib));
  series.append(sample_at(2.0, 1, 7 * gib));
  series.append(sample_at(3.0, 1, 6 * gib));
  series.append(sample_at(4.0, 1, std::nullopt));
  EXPECT_EQ(series.peak_memory_used(1.5, 3.5), 7 * gib);
  EXPECT_EQ(series.peak_memory_used(3.1, 3.2), 6 * gib);  // none inside: the reading before
  EXPECT_EQ(series.peak_memory_used(0.0, 0.5), std::nullopt);
}

// --- window arithmetic ---------------------------------------------------------------

SourceStatus counter_status(bool independent_power) {
  SourceStatus status;
  status.name = independent_power ? "nvml" : "rapl";
  status.device = independent_power ? DeviceKind::kGpu : DeviceKind::kCpu;
  status.available = true;
  status.has_energy_counter = true;
  status.counter_resolution_s = independent_power ? 0.1 : 0.001;
  status.power_independent_of_counter = independent_power;
  return status;
}

// Counter readings taken at t0 and t1; the counter last advanced at last_advance_s.
CounterWindow counter_window(double t0, double t1, double joules, uint64_t glitches, double last_advance_s) {
  return CounterWindow{CounterSnapshot{t0, 1000, 2, 50, t0 - 0.05},
                       CounterSnapshot{t1, 1000 + joules, 2 + glitches, 70, last_advance_s}};
}

SeriesFigures sampled_figures(double joules) { return SeriesFigures{joules, 260.0, uint64_t(1) << 30, 10}; }

TEST(WindowEnergy, TrustedCounterIsChosenAndBothFiguresKept) {
  SourceEnergy e = window_energy(counter_status(true), 10, 14, counter_window(10, 14, 1000, 0, 13.95), sampled_figures(980));
  EXPECT_EQ(e.method, EnergyMethod::kCounter);
  EXPECT_DOUBLE_EQ(*e.joules, 1000);
  EXPECT_DOUBLE_EQ(*e.counter_joules, 1000);
  EXPECT_DOUBLE_EQ(*e.sampled_joules, 980);
  EXPECT_DOUBLE_EQ(*e.mean_watts, 250);
  EXPECT_NEAR(*e.disagreement(), 20.0 / 980, 1e-12);
  EXPECT_EQ(e.flags.describe(), "");
  EXPECT_EQ(e.peak_memory_used_bytes, uint64_t(1) << 30);
}

TEST(WindowEnergy, ShortGlitchedOrStaleWindowsFallBackToSamples) {
  SourceEnergy short_window =
      window_energy(counter_status(true), 10, 10.05, counter_window(10, 10.05, 0, 0, 9.95), sampled_figures(12.5));
  EXPECT_EQ(short_window.method, EnergyMethod::kSampled);
  EXPECT_DOUBLE_EQ(*short_window.joules, 12.5);
  EXPECT_EQ(short_window.flags.describe(), "shorter_than_counter_resolution");

  SourceEnergy glitched =
      window_energy(counter_status(true), 10, 14, counter_window(10, 14, 600, 1, 13.95), sampled_figures(980));
  EXPECT_EQ(glitched.method, EnergyMethod::kSampled);
  EXPECT_DOUBLE_EQ(*glitched.joules, 980);
  EXPECT_DOUBLE_EQ(*glitched.counter_joules, 600);
  EXPECT_EQ(glitched.flags.describe(), "glitch_rejected");

  SourceEnergy stale = window_energy(counter_status(true), 10, 14, counter_window(10, 14, 0, 0, 9.95), sampled_figures(980));
  EXPECT_EQ(stale.method, EnergyMethod::kSampled);
  EXPECT_EQ(stale.flags.describe(), "stale_counter");
  EXPECT_DOUBLE_EQ(*stale.counter_joules, 0);

  // Stopped partway: it advanced early in the window, then not for the last 0.5 s.
  SourceEnergy stopped =
      window_energy(counter_status(true), 10, 14, counter_window(10, 14, 600, 0, 13.5), sampled_figures(980));
  EXPECT_TRUE(stopped.flags.stale_counter);
  EXPECT_EQ(stopped.method, EnergyMethod::kSampled);
  // Still for 0.2 s: within three NVML updates and normal for a slow counter.
  SourceEnergy slow = window_energy(counter_status(true), 10, 14, counter_window(10, 14, 950, 0, 13.8), sampled_figures(980));
  EXPECT_FALSE(slow.flags.stale_counter);
}

TEST(WindowEnergy, CounterTooCoarseForTheWindowFallsBackToSamples) {
  // 100 ms steps in a 1 s window: up to 10 % off.
  SourceEnergy step = window_energy(counter_status(true), 10, 11, counter_window(10, 11, 300, 0, 10.95), sampled_figures(250));
  EXPECT_EQ(step.flags.describe(), "counter_too_coarse");
  EXPECT_EQ(step.method, EnergyMethod::kSampled);
  EXPECT_DOUBLE_EQ(*step.counter_joules, 300);
  // Readings taken 0.5 s from each edge (a counter polled in the background): a 10 s
  // window is uncertain by 1.1 s, a 30 s one by 3.7 %.
  SourceEnergy polled = window_energy(counter_status(true), 10, 20, counter_window(9.5, 19.5, 2500, 0, 19.45), sampled_figures(2500));
  EXPECT_TRUE(polled.flags.counter_too_coarse);
  SourceEnergy long_polled =
      window_energy(counter_status(true), 10, 40, counter_window(9.5, 39.5, 7500, 0, 39.45), sampled_figures(7400));
  EXPECT_EQ(long_polled.method, EnergyMethod::kCounter);
  // RAPL's 1 ms steps are fine for a 0.1 s window.
  SourceEnergy rapl = window_energy(counter_status(false), 10, 10.1, counter_window(10, 10.1, 5, 0, 10.1), sampled_figures(5));
  EXPECT_EQ(rapl.method, EnergyMethod::kCounter);
}

TEST(WindowEnergy, StillCounterOfAnIdleDeviceIsNotStale) {
  SourceEnergy idle = window_energy(counter_status(true), 10, 14, counter_window(10, 14, 0, 0, 9.95), sampled_figures(1.0));
  EXPECT_EQ(idle.method, EnergyMethod::kCounter);
  EXPECT_FALSE(idle.flags.stale_counter);
}

TEST(WindowEnergy, StaleCounterWithDerivedSamplesHasNoFigure) {
  SourceEnergy e = window_energy(counter_status(false), 10, 12, counter_window(10, 12, 0, 0, 9.95), sampled_figures(0));
  EXPECT_TRUE(e.flags.stale_counter);
  EXPECT_EQ(e.method, EnergyMethod::kNone);
  EXPECT_FALSE(e.joules);
  EXPECT_FALSE(e.mean_watts);
  EXPECT_DOUBLE_EQ(*e.counter_joules, 0);
}

TEST(WindowEnergy, NoCounterMeansSampledAndNothingMeansAbsent) {
  SourceStatus amdgpu;
  amdgpu.name = "amdgpu";
  SourceEnergy sampled = window_energy(amdgpu, 10, 12, std::nullopt, sampled_figures(90));
  EXPECT_EQ(sampled.method, EnergyMethod::kSampled);
  EXPECT_DOUBLE_EQ(*sampled.mean_watts, 45);
  EXPECT_FALSE(sampled.counter_joules);
  EXPECT_FALSE(sampled.disagreement());
  SourceEnergy nothing = window_energy(amdgpu, 10, 12, std::nullopt, SeriesFigures{});
  EXPECT_EQ(nothing.method, EnergyMethod::kNone);
  EXPECT_FALSE(nothing.joules);
  EXPECT_STREQ(energy_method_name(nothing.method), "none");
}

TEST(CounterReadPolicy, ExpensiveCountersAreReadInTheBackground) {
  SourceStatus status = counter_status(true);
  set_counter_read_policy(status, 20e-6);
  EXPECT_TRUE(status.counter_read_at_window_edges);
  EXPECT_FALSE(status.counter_poll_s);
  set_counter_read_policy(status, 4e-3);  // NVML's counter on an H100 (driver 580)
  EXPECT_FALSE(status.counter_read_at_window_edges);
  EXPECT_DOUBLE_EQ(*status.counter_poll_s, 0.4);  // 1 % of a core
  set_counter_read_policy(status, 0.5e-3);
  EXPECT_DOUBLE_EQ(*status.counter_poll_s, 0.1);  // never more often than it updates
}

// --- live windows --------------------------------------------------------------------

// Advances a RAPL zone's energy_uj at a known power, wrapping at its range, from a
// thread of its own (as the hardware would), every millisecond.
class RaplWriter {
 public:
  RaplWriter(const FixtureTree& tree, fs::path zone, double watts, uint64_t range_uj)
      : tree_(tree), path_(kPowercap / zone / "energy_uj"), watts_(watts), range_uj_(range_uj) {
    thread_ = std::thread([this] { run(); });
  }
  ~RaplWriter() {
    stop_ = true;
    thread_.join();
  }

 private:
  void run() {
    auto start = std::chrono::steady_clock::now();
    while (!stop_) {
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      tree_.write(path_, uint64_t(std::llround(watts_ * seconds * 1e6)) % range_uj_);
      std::this_thread::sleep_for(1ms);
    }
  }

  const FixtureTree& tree_;
  fs::path path_;
  double watts_;
  uint64_t range_uj_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TelemetryConfig fixture_config(const FixtureTree& tree, const std::string& pci, std::chrono::milliseconds interval) {
  TelemetryConfig config;
  config.sysfs_root = tree.root().string();
  config.gpu_pci_bus_id = pci;
  config.sample_interval = interval;
  config.nvml_library = "libattnscope-no-such-nvml.so.1";  // the same result on GPU and non-GPU hosts
  return config;
}

TEST(LiveWindow, CounterAdvancedAtAKnownRateIsMeasuredWithin2Percent) {
  FixtureTree tree;
  const uint64_t range_uj = 30000000;  // 30 J: at 50 W the counter wraps every 0.6 s
  add_rapl_zone(tree, "intel-rapl:0", "package-0", 0, range_uj);
  add_amdgpu_card(tree, "card0", "0000:03:00.0", true);  // 45 W, constant
  RaplWriter writer(tree, "intel-rapl:0", 50.0, range_uj);
  Telemetry telemetry(fixture_config(tree, "0000:03:00.0", 20ms));
  std::this_thread::sleep_for(100ms);

  telemetry.begin_window("step");
  std::this_thread::sleep_for(1500ms);
  WindowResult window = telemetry.end_window("step");

  const SourceEnergy* cpu = window.cpu();
  ASSERT_TRUE(cpu && cpu->joules && cpu->sampled_joules);
  double expected = 50.0 * window.duration_s();
  EXPECT_EQ(cpu->method, EnergyMethod::kCounter) << cpu->flags.describe();
  EXPECT_NEAR(*cpu->joules, expected, 0.02 * expected);
  EXPECT_NEAR(*cpu->sampled_joules, expected, 0.05 * expected);
  EXPECT_NEAR(*cpu->mean_watts, 50.0, 1.0);
  EXPECT_FALSE(cpu->flags.glitch_rejected);

  const SourceEnergy* gpu = window.gpu();
  ASSERT_TRUE(gpu && gpu->joules);
  EXPECT_EQ(gpu->source, "amdgpu");
  EXPECT_EQ(gpu->method, EnergyMethod::kSampled);
  EXPECT_NEAR(*gpu->joules, 45.0 * window.duration_s(), 0.02 * 45.0 * window.duration_s());
  EXPECT_EQ(gpu->peak_memory_used_bytes, uint64_t(3) << 30);
  EXPECT_GE(gpu->samples, 50u);

  WindowResult idle = telemetry.measure_idle(0.5);
  ASSERT_TRUE(idle.cpu() && idle.cpu()->mean_watts);
  EXPECT_NEAR(*idle.cpu()->mean_watts, 50.0, 1.0);
  EXPECT_EQ(idle.name, "idle");
}

TEST(LiveWindow, ProcessCpuTimeAndUtilizationCoverTheWindow) {
  FixtureTree tree;
  Telemetry telemetry(fixture_config(tree, "", 50ms));
  telemetry.begin_window("busy");
  double start = thread_cpu_seconds();
  volatile double sink = 0;
  while (thread_cpu_seconds() - start < 0.2) sink = sink + 1;
  WindowResult window = telemetry.end_window("busy");
  EXPECT_GE(window.cpu_seconds(), 0.2);
  EXPECT_DOUBLE_EQ(window.cpu_utilization(), window.cpu_seconds() / window.duration_s());
  EXPECT_GT(window.peak_rss_bytes, 0u);
  EXPECT_TRUE(window.sources.empty());  // nothing available in an empty tree
  for (const SourceStatus& status : telemetry.sources()) EXPECT_FALSE(status.available) << status.name;
}

TEST(LiveWindow, NamesMustBeOpenedOnceAndClosedOnce) {
  FixtureTree tree;
  Telemetry telemetry(fixture_config(tree, "", 50ms));
  telemetry.begin_window("run");
  telemetry.begin_window("step");  // overlapping windows of different names are fine
  EXPECT_THROW(telemetry.begin_window("run"), TelemetryError);
  telemetry.end_window("step");
  EXPECT_THROW(telemetry.end_window("step"), TelemetryError);
  EXPECT_NO_THROW(telemetry.end_window("run"));
  TelemetryConfig bad = fixture_config(tree, "", 0ms);
  try {
    Telemetry{bad};
    ADD_FAILURE() << "a 0 ms sample interval was accepted";
  } catch (const TelemetryError& e) {
    EXPECT_TRUE(e.bad_setting()) << e.what();
  }
}

// A GPU-like source with an NVML-style counter (mJ, no wrap) and independent power,
// whose counter the test can make glitch once or freeze, and whose counter read can be
// made slow (then windows must take the sampler's readings instead).
class ScriptedGpu : public PowerSource {
 public:
  ScriptedGpu(double watts, double resolution_s, std::chrono::milliseconds read_delay)
      : watts_(watts), read_delay_(read_delay), counter_(nvml_like_spec()) {
    status_.name = "scripted";
    status_.device = DeviceKind::kGpu;
    status_.available = true;
    status_.has_energy_counter = true;
    status_.counter_resolution_s = resolution_s;
    set_counter_read_policy(status_, std::chrono::duration<double>(read_delay).count());
  }
  const SourceStatus& status() const override { return status_; }
  std::optional<PowerSample> sample(const TelemetryClock& clock) override {
    PowerSample sample = sample_at(clock.now(), watts_);
    read_counter(clock);
    return sample;
  }
  std::optional<CounterSnapshot> read_counter(const TelemetryClock& clock) override {
    std::lock_guard<std::mutex> lock(mutex_);
    std::this_thread::sleep_for(read_delay_);
    double t = clock.now();
    uint64_t raw = uint64_t(watts_ * t * 1e3);
    if (glitch_next_.exchange(false)) raw = 7;
    if (frozen_) {
      if (!frozen_raw_) frozen_raw_ = raw;
      raw = *frozen_raw_;
    }
    counter_.feed(raw, t);
    latest_ = CounterSnapshot{t, counter_.joules(), counter_.glitches(), counter_.advances(), counter_.last_advance_s()};
    return latest_;
  }
  std::optional<CounterSnapshot> latest_counter() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return latest_;
  }
  void glitch_once() { glitch_next_ = true; }
  void freeze() { frozen_ = true; }

 private:
  SourceStatus status_;
  double watts_;
  std::chrono::milliseconds read_delay_;
  mutable std::mutex mutex_;
  CheckedCounter counter_;
  std::optional<CounterSnapshot> latest_;
  std::atomic<bool> glitch_next_{false};
  std::atomic<bool> frozen_{false};
  std::optional<uint64_t> frozen_raw_;
};

struct ScriptedTelemetry {
  ScriptedGpu* gpu;
  std::unique_ptr<Telemetry> telemetry;
};

ScriptedTelemetry scripted_telemetry(double watts, double resolution_s = 0.01,
                                     std::chrono::milliseconds read_delay = 0ms) {
  auto gpu = std::make_unique<ScriptedGpu>(watts, resolution_s, read_delay);
  ScriptedGpu* handle = gpu.get();
  std::vector<DetectedSource> sources(1);
  sources[0].status = gpu->status();
  sources[0].source = std::move(gpu);
  TelemetryConfig config;
  config.sample_interval = 10ms;
  return {handle, std::make_unique<Telemetry>(config, std::move(sources))};
}

TEST(LiveWindow, GlitchingCounterIsFlaggedAndTheSampledFigureUsed) {
  ScriptedTelemetry t = scripted_telemetry(100);
  t.telemetry->begin_window("step");
  std::this_thread::sleep_for(300ms);
  t.gpu->glitch_once();  // the sampler's next read sees the counter near zero
  std::this_thread::sleep_for(300ms);
  WindowResult window = t.telemetry->end_window("step");
  const SourceEnergy* gpu = window.gpu();
  ASSERT_TRUE(gpu && gpu->joules && gpu->counter_joules);
  double expected = 100 * window.duration_s();
  EXPECT_EQ(gpu->flags.describe(), "glitch_rejected");
  EXPECT_EQ(gpu->method, EnergyMethod::kSampled);
  EXPECT_NEAR(*gpu->joules, expected, 0.02 * expected);
  EXPECT_NEAR(*gpu->counter_joules, expected, 0.02 * expected);  // the one-off value cost nothing
}

TEST(LiveWindow, FrozenCounterIsStaleAndTheSampledFigureUsed) {
  ScriptedTelemetry t = scripted_telemetry(100);
  t.telemetry->begin_window("step");
  t.gpu->freeze();
  std::this_thread::sleep_for(500ms);
  WindowResult window = t.telemetry->end_window("step");
  const SourceEnergy* gpu = window.gpu();
  ASSERT_TRUE(gpu && gpu->joules && gpu->counter_joules);
  EXPECT_EQ(gpu->flags.describe(), "stale_counter");
  EXPECT_EQ(gpu->method, EnergyMethod::kSampled);
  EXPECT_NEAR(*gpu->joules, 100 * window.duration_s(), 2.0);
  EXPECT_LT(*gpu->counter_joules, 5.0);  // at most what it counted before it froze
}

TEST(LiveWindow, WindowShorterThanTheCounterResolutionUsesSamples) {
  ScriptedTelemetry t = scripted_telemetry(100, /*resolution_s=*/0.1);
  t.telemetry->begin_window("short");
  std::this_thread::sleep_for(20ms);
  WindowResult window = t.telemetry->end_window("short");
  const SourceEnergy* gpu = window.gpu();
  ASSERT_TRUE(gpu && gpu->joules);
  EXPECT_TRUE(gpu->flags.shorter_than_counter_resolution);
  EXPECT_EQ(gpu->method, EnergyMethod::kSampled);
  EXPECT_NEAR(*gpu->joules, 100 * window.duration_s(), 1e-6);
}

TEST(LiveWindow, ExpensiveCounterIsNotReadAtTheEdges) {
  // Each read takes 5 ms: windows must use the sampler's readings and stay cheap.
  ScriptedTelemetry t = scripted_telemetry(100, /*resolution_s=*/0.001, /*read_delay=*/5ms);
  ASSERT_FALSE(t.gpu->status().counter_read_at_window_edges);
  auto start = std::chrono::steady_clock::now();
  t.telemetry->begin_window("step");
  t.telemetry->end_window("step");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2e-3);

  t.telemetry->begin_window("run");
  std::this_thread::sleep_for(1500ms);
  WindowResult window = t.telemetry->end_window("run");
  const SourceEnergy* gpu = window.gpu();
  ASSERT_TRUE(gpu && gpu->joules && gpu->counter_joules);
  double expected = 100 * window.duration_s();
  EXPECT_NEAR(*gpu->counter_joules, expected, 0.05 * expected);  // readings up to a tick from the edges
  EXPECT_NEAR(*gpu->joules, expected, 0.05 * expected);
}

// --- the sampler's own cost ----------------------------------------------------------

TEST(SamplerOverhead, MeasuredAndSmall) {
  FixtureTree tree;
  add_rapl_zone(tree, "intel-rapl:0", "package-0", 0);
  add_rapl_zone(tree, "intel-rapl:0/intel-rapl:0:0", "dram", 0);
  add_rapl_zone(tree, "intel-rapl:1", "package-1", 0);
  add_amdgpu_card(tree, "card0", "0000:03:00.0", true);
  Telemetry telemetry(fixture_config(tree, "0000:03:00.0", 50ms));
  std::this_thread::sleep_for(2s);
  SamplerStats stats = telemetry.sampler_stats();
  std::cout << "  sampler at 50 ms (3 RAPL zones + amdgpu, 8 sysfs files a tick): " << stats.ticks << " ticks, "
            << stats.cpu_seconds * 1e3 << " ms CPU over " << stats.wall_seconds << " s = "
            << stats.cpu_share() * 100 << " % of one core, " << stats.cpu_seconds / double(stats.ticks) * 1e6
            << " us per tick\n";
  EXPECT_GE(stats.ticks, 30u);
  EXPECT_GT(stats.cpu_seconds, 0.0);
  EXPECT_LT(stats.cpu_share(), 0.02);

  const int pairs = 200;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < pairs; ++i) {
    telemetry.begin_window("step");
    telemetry.end_window("step");
  }
  double per_pair_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / pairs;
  std::cout << "  begin_window + end_window: " << per_pair_us << " us per pair (3 RAPL counters read at each edge)\n";
  EXPECT_LT(per_pair_us, 2000.0);
}

// --- writers -------------------------------------------------------------------------

TEST(PowerCsv, AbsentMetricsAreEmptyCells) {
  std::ostringstream out;
  write_power_csv_header(out);
  PowerSample gpu = sample_at(1.5, 301.25, 1024);
  gpu.utilization_percent = 99.0;
  gpu.clock_mhz = 1980.0;
  gpu.temperature_c = 65.0;
  PowerSample cpu = sample_at(1.5125, 88.0);
  write_power_csv_rows(out, {PowerRow{"nvml", gpu}, PowerRow{"rapl", cpu}});
  EXPECT_EQ(out.str(),
            "time_s,source,watts,memory_used_bytes,utilization_percent,clock_mhz,temperature_c\n"
            "1.500000,nvml,301.250,1024,99.0,1980.0,65.0\n"
            "1.512500,rapl,88.000,,,,\n");
}

TEST(PowerCsv, SamplesSinceACursorComeOnceInTimeOrder) {
  FixtureTree tree;
  add_amdgpu_card(tree, "card0", "0000:03:00.0", true);
  Telemetry telemetry(fixture_config(tree, "0000:03:00.0", 10ms));
  SeriesCursor cursor;
  std::this_thread::sleep_for(100ms);
  std::vector<PowerRow> first = telemetry.samples_since(cursor);
  std::this_thread::sleep_for(100ms);
  std::vector<PowerRow> second = telemetry.samples_since(cursor);
  ASSERT_GE(first.size(), 3u);
  ASSERT_GE(second.size(), 3u);
  EXPECT_GT(second.front().sample.time_s, first.back().sample.time_s);
  EXPECT_EQ(first.front().source, "amdgpu");
}

TEST(TelemetryJson, SourcesWithReasonsAndNullForAbsentFigures) {
  FixtureTree tree;
  add_rapl_zone(tree, "intel-rapl:0", "package-0", 0);
  Telemetry telemetry(fixture_config(tree, "", 50ms));
  nlohmann::json manifest = telemetry_manifest_json(telemetry);
  EXPECT_EQ(manifest["sample_interval_ms"], 50);
  ASSERT_EQ(manifest["sources"].size(), 3u);
  for (const auto& source : manifest["sources"]) {
    if (source["name"] == "rapl") {
      EXPECT_TRUE(source["available"].get<bool>());
      EXPECT_EQ(source["counter_resolution_s"], kRaplCounterResolutionSeconds);
    } else {
      EXPECT_FALSE(source["available"].get<bool>());
      EXPECT_TRUE(contains(source["detail"].get<std::string>(), "no PCI bus id"));
      EXPECT_TRUE(source["counter_resolution_s"].is_null());
    }
  }
  SourceEnergy absent;
  absent.source = "amdgpu";
  WindowResult window;
  window.sources.push_back(absent);
  nlohmann::json json = window_json(window);
  EXPECT_TRUE(json["sources"][0]["joules"].is_null());
  EXPECT_EQ(json["sources"][0]["method"], "none");
}

// --- the command ---------------------------------------------------------------------

TEST(TelemetryCommand, ListsSourcesAndMeasuresThem) {
  FixtureTree tree;
  add_rapl_zone(tree, "intel-rapl:0", "package-0", 0);
  std::string output;
  int status = testing::run_attnscope(
      "telemetry --seconds 0.3 --sample-ms 20 --sysfs-root " + tree.root().string(), &output);
  ASSERT_EQ(status, 0) << output;
  EXPECT_TRUE(contains(output, "rapl    cpu  available")) << output;
  EXPECT_TRUE(contains(output, "nvml    gpu  unavailable")) << output;
  EXPECT_TRUE(contains(output, "sampler:")) << output;

  status = testing::run_attnscope("telemetry --seconds 0.2 --sysfs-root " + tree.root().string() + "/sys", &output);
  EXPECT_EQ(status, 0) << output;
  EXPECT_TRUE(contains(output, "rapl    cpu  available")) << output;  // a sysfs mount as the root
}

TEST(TelemetryCommand, EnvironmentSetsTheRootAndBadOptionsAreUsageErrors) {
  FixtureTree tree;
  add_rapl_zone(tree, "intel-rapl:0", "package-0", 0);
  std::string output;
  int status = testing::run_attnscope(
      "telemetry --seconds 0.2 --sample-ms 20 --sysfs-root /nonexistent-attnscope-root", &output);
  EXPECT_EQ(status, 2) << output;
  status = testing::run_attnscope("telemetry --sample-ms 0", &output);
  EXPECT_EQ(status, 2) << output;
  setenv("ATTNSCOPE_SYSFS_ROOT", tree.root().c_str(), 1);  // inherited by the child
  status = testing::run_attnscope("telemetry --seconds 0.2 --sample-ms 20", &output);
  unsetenv("ATTNSCOPE_SYSFS_ROOT");
  EXPECT_EQ(status, 0) << output;
  EXPECT_TRUE(contains(output, "rapl    cpu  available")) << output;
}

}  // namespace
}  // namespace attnscope
