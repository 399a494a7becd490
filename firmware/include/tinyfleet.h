/* tinyfleet firmware library: umbrella header. */
#ifndef TINYFLEET_H
#define TINYFLEET_H

#include "tf_framing.h"
#include "tf_head.h"
#include "tf_kernels.h"
#include "tf_port.h"
#include "tf_status.h"

#endif
