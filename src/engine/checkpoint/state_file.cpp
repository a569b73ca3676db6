#include "engine/checkpoint/state_file.h"

#include <hdf5.h>

#include "core/error.h"
#include "core/fault_injection.h"

namespace tessera::checkpoint {

namespace {

// Closes an HDF5 handle when it goes out of scope.
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  ~Handle() {
    if (id >= 0) close(id);
  }
};

void quiet_hdf5() {
  static const bool once = [] { return H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) >= 0; }();
  (void)once;
}

// A flat range of a row-major [rows, cols] tensor as up to three rectangles: the rest of the first
// row, whole rows, the start of the last row. fn(row, col, rows, cols, offset into the range).
template <typename Fn>
void for_each_rect(int64_t cols, int64_t begin, int64_t end, Fn&& fn) {
  int64_t at = begin;
  while (at < end) {
    const int64_t row = at / cols, col = at % cols;
    if (col != 0 || end - at < cols) {
      const int64_t n = std::min(cols - col, end - at);
      fn(row, col, int64_t{1}, n, at - begin);
      at += n;
    } else {
      const int64_t rows = (end - at) / cols;
      fn(row, int64_t{0}, rows, cols, at - begin);
      at += rows * cols;
    }
  }
}

// Flushes and closes an open file; a failure (a full disk) is an error naming the file.
void close_checked(hid_t file, const std::string& path) {
  const bool flushed = H5Fflush(file, H5F_SCOPE_LOCAL) >= 0;
  const bool closed = H5Fclose(file) >= 0;
  const int injected = injected_write_error(path);
  TS_CHECK(flushed && closed && injected == 0, "{}: cannot write: {}", path,
           injected ? error_text(injected, true) : "HDF5 could not flush or close it (is the disk full?)");
}

}  // namespace

void StateFile::create(const std::string& path, const std::vector<ParamSpec>& params) {
  quiet_hdf5();
  Handle file{H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose};
  TS_CHECK(file.id >= 0, "{}: cannot create the checkpoint file", path);
  for (const char* group_name : kStateGroups) {
    Handle group{H5Gcreate2(file.id, group_name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose};
    TS_CHECK(group.id >= 0, "{}: cannot create group {}", path, group_name);
    for (const ParamSpec& p : params) {
      TS_CHECK(p.shape.size() >= 1 && p.shape.size() <= 2, "{}: {} has {} dimensions (1 or 2 supported)", path, p.name,
               p.shape.size());
      std::vector<hsize_t> dims(p.shape.begin(), p.shape.end());
      Handle space{H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose};
      Handle set{H5Dcreate2(group.id, p.name.c_str(), H5T_IEEE_F32LE, space.id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                 H5Dclose};
      TS_CHECK(set.id >= 0, "{}: cannot create dataset {}/{}", path, group_name, p.name);
    }
  }
  const hid_t id = file.id;
  file.id = -1;
  close_checked(id, path);
}

StateFile::StateFile(const std::string& path, bool writable) : path_(path) {
  quiet_hdf5();
  file_ = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
  TS_CHECK(file_ >= 0, "{}: cannot open the checkpoint file (not HDF5, or unreadable)", path);
}

StateFile::~StateFile() {
  if (file_ >= 0) H5Fclose(file_);
}

void StateFile::close() {
  const hid_t id = file_;
  file_ = -1;
  if (id >= 0) close_checked(id, path_);
}

void StateFile::write(const std::string& group, const ParamSpec& param, int64_t begin, int64_t end, const float* data) {
  transfer(group, param, begin, end, const_cast<float*>(data), true);
}

void StateFile::read(const std::string& group, const ParamSpec& param, int64_t begin, int64_t end, float* data) {
  transfer(group, param, begin, end, data, false);
}

void StateFile::transfer(const std::string& group, const ParamSpec& param, int64_t begin, int64_t end, float* data,
                         bool write) {
  const std::string name = group + "/" + param.name;
  Handle set{H5Dopen2(file_, name.c_str(), H5P_DEFAULT), H5Dclose};
  TS_CHECK(set.id >= 0, "{}: no dataset {}", path_, name);
  Handle space{H5Dget_space(set.id), H5Sclose};
  const int rank = H5Sget_simple_extent_ndims(space.id);
  std::vector<hsize_t> dims(std::max(rank, 0));
  H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
  TS_CHECK(Shape(dims.begin(), dims.end()) == param.shape, "{}: {} has shape {}, expected {}", path_, name,
           shape_str(Shape(dims.begin(), dims.end())), shape_str(param.shape));
  const int64_t cols = param.shape.back();
  for_each_rect(cols, begin, end, [&](int64_t row, int64_t col, int64_t rows, int64_t n, int64_t offset) {
    hsize_t start2[2] = {hsize_t(row), hsize_t(col)}, count2[2] = {hsize_t(rows), hsize_t(n)};
    hsize_t start1[1] = {hsize_t(col)}, count1[1] = {hsize_t(n)};
    const bool matrix = param.shape.size() == 2;
    TS_CHECK(H5Sselect_hyperslab(space.id, H5S_SELECT_SET, matrix ? start2 : start1, nullptr, matrix ? count2 : count1,
                                 nullptr) >= 0,
             "{}: bad slice of {}", path_, name);
    hsize_t total = hsize_t(rows * n);
    Handle memory{H5Screate_simple(1, &total, nullptr), H5Sclose};
    const herr_t rc = write ? H5Dwrite(set.id, H5T_NATIVE_FLOAT, memory.id, space.id, H5P_DEFAULT, data + offset)
                            : H5Dread(set.id, H5T_NATIVE_FLOAT, memory.id, space.id, H5P_DEFAULT, data + offset);
    TS_CHECK(rc >= 0, "{}: cannot {} {}", path_, write ? "write" : "read", name);
  });
}

}  // namespace tessera::checkpoint
