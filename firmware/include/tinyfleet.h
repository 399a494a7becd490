/* tinyfleet firmware library: umbrella header. */
#ifndef TINYFLEET_H
#define TINYFLEET_H

#include "tinyfleet_framing.h"
#include "tinyfleet_head.h"
#include "tinyfleet_kernels.h"
#include "tinyfleet_port.h"
#include "tinyfleet_status.h"

#endif
