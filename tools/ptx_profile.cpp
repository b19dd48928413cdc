// ptx_profile — runs one kernel of the PTX that NVIDIA's OpenCL compiled for attnscope
// (ATTNSCOPE_DUMP_BINARIES) through the CUDA driver API, so that Nsight Compute, which does
// not see OpenCL kernels, can profile the very code attnscope runs: stall reasons, pipe and
// local-memory utilisation, per-instruction samples.
//
//   ptx_profile FILE.bin KERNEL GRID BLOCK [--regs N] [--repeat R] [--flops F] -- ARG...
//     GRID   x[,y[,z]] work-groups (OpenCL's global size / local size); BLOCK x[,y[,z]]
//            work-items (OpenCL's local size)
//     --regs the program's -cl-nv-maxrregcount, if it had one (the PTX does not carry it)
//     ARG    one per kernel parameter, in order:
//              i:V  32-bit int     f:V  float     l:V  64-bit unsigned
//              buf:NAME:FLOATS[:SCALE]  a new device buffer of FLOATS floats, uniform in
//                                       [-SCALE, SCALE] (default 1; never zeros)
//              buf:NAME                 the buffer NAME again (q, k and v share one)
//
// The PTX is NVIDIA's OpenCL's: the work-group offsets it adds to %ctaid come from
// environment registers %envreg0..2 (0 here: no global offset) and get_num_groups from
// %envreg6..8, which the OpenCL runtime sets and a CUDA launch does not: they are rewritten
// to 0 and %nctaid before loading. Any other %envreg stops the program.
//
// Prints registers, spills, shared memory, resident work-groups per SM and the median time
// of R launches (CUDA events), and TFLOP/s with --flops. Built on the GPU machine:
//   g++ -O2 -std=c++17 tools/ptx_profile.cpp -I/usr/local/cuda/include -lcuda -o ptx_profile
#include <cuda.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "ptx_profile: %s\n", message.c_str());
  std::exit(2);
}

void check(CUresult status, const char* what) {
  if (status == CUDA_SUCCESS) return;
  const char* name = nullptr;
  cuGetErrorName(status, &name);
  fail(std::string(what) + ": " + (name ? name : "unknown error"));
}

std::vector<int> parse_dims(const std::string& text) {
  std::vector<int> dims;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');) dims.push_back(std::atoi(part.c_str()));
  while (dims.size() < 3) dims.push_back(1);
  if (dims.size() != 3 || dims[0] < 1 || dims[1] < 1 || dims[2] < 1)
    fail("'" + text + "' is not x[,y[,z]] of positive integers");
  return dims;
}

// The dumped binary, NULs dropped, environment registers rewritten (see the top).
std::string load_ptx(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) fail("cannot read " + path);
  std::string ptx((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  ptx.erase(std::remove(ptx.begin(), ptx.end(), '\0'), ptx.end());
  const std::map<std::string, std::string> replacement = {
      {"%envreg0", "0"}, {"%envreg1", "0"}, {"%envreg2", "0"},  // group offsets
      {"%envreg3", "0"}, {"%envreg4", "0"}, {"%envreg5", "0"},  // global offsets
      {"%envreg6", "%nctaid.x"}, {"%envreg7", "%nctaid.y"}, {"%envreg8", "%nctaid.z"}};
  const std::regex envreg("%envreg[0-9]+");
  std::string out;
  auto begin = std::sregex_iterator(ptx.begin(), ptx.end(), envreg);
  size_t last = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    const auto found = replacement.find(it->str());
    if (found == replacement.end())
      fail(path + " reads " + it->str() + ", which this tool does not set");
    out += ptx.substr(last, it->position() - last) + found->second;
    last = it->position() + it->length();
  }
  return out + ptx.substr(last);
}

struct Arguments {
  std::vector<std::vector<unsigned char>> values;  // each parameter's bytes
  std::map<std::string, CUdeviceptr> buffers;
};

void add_value(Arguments& args, const void* p, size_t n) {
  const auto* bytes = static_cast<const unsigned char*>(p);
  args.values.emplace_back(bytes, bytes + n);
}

CUdeviceptr random_buffer(size_t floats, float scale, unsigned seed) {
  std::vector<float> host(floats);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-scale, scale);
  for (float& x : host) x = uniform(rng);
  CUdeviceptr p = 0;
  check(cuMemAlloc(&p, floats * sizeof(float)), "cuMemAlloc");
  check(cuMemcpyHtoD(p, host.data(), floats * sizeof(float)), "cuMemcpyHtoD");
  return p;
}

void parse_typed_argument(Arguments& args, const std::string& text) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos) fail("argument '" + text + "' has no type");
  const std::string type = text.substr(0, colon), rest = text.substr(colon + 1);
  if (type == "i") {
    const int32_t v = std::stoi(rest);
    add_value(args, &v, sizeof v);
  } else if (type == "f") {
    const float v = std::stof(rest);
    add_value(args, &v, sizeof v);
  } else if (type == "l") {
    const uint64_t v = std::stoull(rest);
    add_value(args, &v, sizeof v);
  } else if (type == "buf") {
    std::vector<std::string> parts;
    std::stringstream in(rest);
    for (std::string part; std::getline(in, part, ':');) parts.push_back(part);
    if (parts.empty() || parts.size() > 3)
      fail("argument '" + text + "' is not buf:NAME[:FLOATS[:SCALE]]");
    CUdeviceptr& p = args.buffers[parts[0]];
    if (parts.size() == 1 && !p) fail("buffer '" + parts[0] + "' is used before it is sized");
    if (parts.size() > 1) {
      if (p) fail("buffer '" + parts[0] + "' is sized twice");
      p = random_buffer(std::stoull(parts[1]), parts.size() > 2 ? std::stof(parts[2]) : 1.f,
                        unsigned(args.buffers.size()));
    }
    add_value(args, &p, sizeof p);
  } else {
    fail("argument '" + text + "': unknown type '" + type + "' (i, f, l, buf)");
  }
}

void parse_argument(Arguments& args, const std::string& text) {
  try {
    parse_typed_argument(args, text);
  } catch (const std::logic_error&) {  // std::stoi and friends: not a number, or out of range
    fail("argument '" + text + "' has a malformed number");
  }
}

// The module of FILE.bin, JIT-compiled with the program's register cap (0: none), and its
// kernel `name`; the JIT's log on failure.
CUfunction load_kernel(const std::string& path, const std::string& name, int regs) {
  const std::string ptx = load_ptx(path);
  char log[16384] = {0};
  std::vector<CUjit_option> options = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  std::vector<void*> values = {log, reinterpret_cast<void*>(uintptr_t(sizeof log))};
  if (regs > 0) {
    options.push_back(CU_JIT_MAX_REGISTERS);
    values.push_back(reinterpret_cast<void*>(uintptr_t(regs)));
  }
  CUmodule module;
  if (cuModuleLoadDataEx(&module, ptx.c_str(), unsigned(options.size()), options.data(),
                         values.data()) != CUDA_SUCCESS)
    fail("loading " + path + " failed:\n" + log);
  CUfunction function;
  check(cuModuleGetFunction(&function, module, name.c_str()), ("kernel " + name).c_str());
  return function;
}

void print_attributes(CUfunction function, const std::string& path, const std::string& name,
                      int block_items) {
  int registers = 0, spill = 0, shared = 0, resident = 0;
  check(cuFuncGetAttribute(&registers, CU_FUNC_ATTRIBUTE_NUM_REGS, function), "registers");
  check(cuFuncGetAttribute(&spill, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, function), "local size");
  check(cuFuncGetAttribute(&shared, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, function), "shared size");
  check(cuOccupancyMaxActiveBlocksPerMultiprocessor(&resident, function, block_items, 0),
        "occupancy");
  std::printf("%s %s: %d registers, %d bytes local (spills), %d bytes shared, "
              "%d work-groups of %d per SM\n",
              path.c_str(), name.c_str(), registers, spill, shared, resident, block_items);
}

// The times of `repeat` launches after two warm-ups (CUDA events), in ms, sorted.
std::vector<float> time_launches(CUfunction function, const std::vector<int>& grid,
                                 const std::vector<int>& block, std::vector<void*>& params,
                                 int repeat) {
  CUevent start, stop;
  check(cuEventCreate(&start, 0), "cuEventCreate");
  check(cuEventCreate(&stop, 0), "cuEventCreate");
  std::vector<float> ms;
  for (int r = 0; r < repeat + 2; ++r) {
    check(cuEventRecord(start, nullptr), "cuEventRecord");
    check(cuLaunchKernel(function, grid[0], grid[1], grid[2], block[0], block[1], block[2], 0,
                         nullptr, params.data(), nullptr),
          "cuLaunchKernel");
    check(cuEventRecord(stop, nullptr), "cuEventRecord");
    check(cuEventSynchronize(stop), "kernel");
    float t = 0;
    check(cuEventElapsedTime(&t, start, stop), "cuEventElapsedTime");
    if (r >= 2) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5)
    fail("usage: ptx_profile FILE.bin KERNEL GRID BLOCK [--regs N] [--repeat R] [--flops F] -- "
         "ARG...");
  const std::string path = argv[1], name = argv[2];
  const std::vector<int> grid = parse_dims(argv[3]);
  const std::vector<int> block = parse_dims(argv[4]);
  int regs = 0, repeat = 20;
  double flops = 0;
  int i = 5;
  for (; i < argc && std::strcmp(argv[i], "--") != 0; ++i) {
    const std::string option = argv[i];
    if (i + 1 >= argc) fail(option + " needs a value");
    if (option == "--regs") regs = std::atoi(argv[++i]);
    else if (option == "--repeat") repeat = std::max(1, std::atoi(argv[++i]));
    else if (option == "--flops") flops = std::atof(argv[++i]);
    else fail("unknown option " + option);
  }
  if (i == argc) fail("no '--' before the kernel's arguments");

  check(cuInit(0), "cuInit");
  CUdevice device;
  check(cuDeviceGet(&device, 0), "cuDeviceGet");
  CUcontext context;
  check(cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
  check(cuCtxSetCurrent(context), "cuCtxSetCurrent");

  const CUfunction function = load_kernel(path, name, regs);
  Arguments args;
  for (++i; i < argc; ++i) parse_argument(args, argv[i]);
  std::vector<void*> params;
  for (auto& v : args.values) params.push_back(v.data());

  print_attributes(function, path, name, block[0] * block[1] * block[2]);
  const std::vector<float> ms = time_launches(function, grid, block, params, repeat);
  const double median = ms[ms.size() / 2];
  std::printf("median of %d launches: %.4f ms (min %.4f)", repeat, median, double(ms.front()));
  if (flops > 0) std::printf(", %.2f TFLOP/s", flops / (median * 1e-3) / 1e12);
  std::printf("\n");
  return 0;
}
