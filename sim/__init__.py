"""Simulated plant: reference gait, wearer and ankle mechanics, motor and driver, sensor node.

The simulated devices speak the real CAN protocols (AK MIT mode, the sensor
node's DBC frames) on a python-can bus, so the controller cannot tell the
simulator from the hardware except by the data.
"""
