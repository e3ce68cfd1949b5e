"""The IoT Edge module that runs beside the scoring runtime on a device."""
