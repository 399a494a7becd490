// tinyfleet on the Nano 33 BLE Sense: run the generated backbone once a second and
// print the embedding over USB serial. Build the library first with
//   tinyfleet firmware build --target nano33ble --model backbone.tflite
// then copy build/firmware-nano33ble/arduino/tinyfleet into your Arduino libraries.
extern "C" {
#include "tinyfleet.h"
#include "tinyfleet_model.h"
}

static int8_t input[TINYFLEET_MODEL_INPUT_SIZE];
static int8_t output[TINYFLEET_MODEL_OUTPUT_SIZE];

void setup() { Serial.begin(115200); }

void loop() {
  unsigned long t0 = micros();
  tinyfleet_status st = tinyfleet_model_invoke(input, output);
  unsigned long dt = micros() - t0;
  Serial.print(tinyfleet_status_name(st));
  Serial.print(" us=");
  Serial.print(dt);
  Serial.print(" out0=");
  Serial.println(output[0]);
  delay(1000);
}
