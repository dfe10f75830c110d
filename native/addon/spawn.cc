// runSync: runs a program to its end with posix_spawn, its stdout and stderr read here (the synchronous oracle
// runs of src/oracle/oracle.ts). Node's spawnSync forks, which copies the page tables of the whole Node
// process and leaves every page of it copy-on-write, so that each later write to the heap faults: the cost of
// a run grows with Node's memory. posix_spawn (vfork semantics in glibc) copies nothing.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "errors.h"
#include "layer.h"

namespace mallocscope {

namespace {

// The most output kept (stdout and stderr together): V8's longest string (2^29 - 24 characters on 64-bit),
// since the output comes back as one.
constexpr size_t kMaxOutput = (size_t{1} << 29) - 24;

// Closes the fds it holds when it goes out of scope (the error paths included).
struct Fds {
  std::vector<int> fds;
  ~Fds() {
    for (int fd : fds)
      if (fd >= 0) close(fd);
  }
};

std::vector<std::string> Strings(Napi::Env env, const Napi::Array& array, const char* name) {
  std::vector<std::string> out;
  out.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value item = array.Get(i);
    if (!item.IsString()) ThrowType(env, kBadType, std::string("runSync: every item of ") + name + " must be a string");
    out.push_back(item.As<Napi::String>().Utf8Value());
  }
  return out;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

// runSync(file, argv, envp): { status, signal, stdout, stderr } (status null when a signal ended it; stdout
// and stderr as UTF-8 text), or { error } when the program could not be started. stdin is /dev/null; the
// child starts with every signal at its default and none blocked, as Node's children do.
Napi::Value RunSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsArray()) {
    ThrowType(env, kBadType, "runSync(file, argv, envp) takes a path and two arrays of strings");
  }
  std::string file = info[0].As<Napi::String>().Utf8Value();
  std::vector<std::string> argv = Strings(env, info[1].As<Napi::Array>(), "argv");
  std::vector<std::string> envp = Strings(env, info[2].As<Napi::Array>(), "envp");
  std::vector<char*> argv_ptrs = Pointers(argv);
  std::vector<char*> envp_ptrs = Pointers(envp);

  // A run that could not start: { error } in Node's shape (code 'ENOENT', syscall 'posix_spawn').
  auto failed = [&](int err, const char* syscall) {
    Napi::Object out = Napi::Object::New(env);
    out.Set("error", ErrnoError(env, err, syscall, "running " + file).Value());
    return out;
  };
  Fds held;
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return failed(errno, "pipe2");
  held.fds = {out_pipe[0], out_pipe[1]};
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return failed(errno, "pipe2");
  held.fds.insert(held.fds.end(), {err_pipe[0], err_pipe[1]});

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  int spawned = posix_spawn(&pid, file.c_str(), &actions, &attr, argv_ptrs.data(), envp_ptrs.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (spawned != 0) return failed(spawned, "posix_spawn");
  // Our write ends closed, so that each read end sees EOF once the child (and its threads) are done.
  close(out_pipe[1]);
  close(err_pipe[1]);
  held.fds = {out_pipe[0], err_pipe[0]};

  std::string text[2];
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open = 2;
  int read_error = 0;
  char buf[1 << 16];
  while (open > 0 && read_error == 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno != EINTR) read_error = errno;
      continue;
    }
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        text[i].append(buf, static_cast<size_t>(n));
        // More than a string can hold: the child is stopped and the run fails with ENOBUFS.
        if (text[0].size() + text[1].size() > kMaxOutput) read_error = ENOBUFS;
      } else if (n == 0) {
        fds[i].fd = -1;  // poll skips a negative fd
        open--;
      } else if (errno != EINTR) {
        read_error = errno;
      }
    }
  }
  // A child still writing to a pipe nobody reads would block for ever: stopped, and its pipes closed, before
  // the wait.
  if (read_error != 0) kill(pid, SIGKILL);
  close(out_pipe[0]);
  close(err_pipe[0]);
  held.fds.clear();
  int status = 0;
  int waited;
  while ((waited = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (waited < 0) return failed(errno, "waitpid");
  if (read_error != 0) return failed(read_error, "read");

  Napi::Object out = Napi::Object::New(env);
  out.Set("status", WIFEXITED(status) ? Napi::Number::New(env, WEXITSTATUS(status)) : env.Null());
  out.Set("signal", WIFSIGNALED(status) ? Napi::Number::New(env, WTERMSIG(status)) : env.Null());
  out.Set("stdout", Napi::String::New(env, text[0]));
  out.Set("stderr", Napi::String::New(env, text[1]));
  return out;
}

}  // namespace mallocscope
