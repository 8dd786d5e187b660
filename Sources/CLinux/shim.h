#ifndef ENFORCER_CLINUX_SHIM_H
#define ENFORCER_CLINUX_SHIM_H
// Linux event sources that Swift's Glibc module does not export: the daemon's wall-clock
// timer (cancelled when the clock is set) and its signals as a file descriptor; and
// glibc's malloc tuning.
#include <malloc.h>
#include <signal.h>
#include <sys/timerfd.h>
#include <sys/signalfd.h>
#endif
