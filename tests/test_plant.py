"""The simulated plant and devices on their own: driver law, limits, watchdog, frames."""
import numpy as np
import pytest

from hal import _mit
from hal.ak import mit_range
from sim.plant import DEFAULTS, TRUTH_LENGTH, build_plant
from sim.wearer import Wearer

RNG = mit_range("AK80-9")


def walking_plant(**over):
    plant = build_plant(over)
    w = Wearer("steady", 1.25, over.get("mass_kg", 80.0), seed=0)
    plant.queue_stride(*w.next_stride(0.0))
    plant.start(0.0)
    plant.queue_stride(*w.next_stride(w.strides[-1].t_end_s))
    return plant, w


def test_unknown_setting_is_refused():
    with pytest.raises(KeyError, match="unknown plant setting"):
        build_plant({"gear": 3})


def test_driver_ignores_commands_until_entered_and_obeys_its_torque_limit():
    plant, _ = walking_plant()
    cmd = _mit.pack_command(RNG, 0.0, 0.0, 0.0, 0.0, 18.0)
    assert plant.driver_frame(cmd, 0.0) == _mit.FRAME_COMMAND
    plant.advance(0.001)
    assert plant.state[3] == 0.0, "inactive driver gives no torque"
    plant.driver_frame(_mit.ENTER_FRAME, 0.001)
    plant.driver_frame(_mit.pack_command(RNG, 0.0, 0.0, 0.0, 0.0, 50.0), 0.001)   # clamped to 18 by the codec
    plant.advance(0.002)
    expected = -DEFAULTS["direction"] * DEFAULTS["ratio"] * DEFAULTS["efficiency"] * DEFAULTS["motor_torque_limit_Nm"]
    assert plant.state[3] == pytest.approx(expected, rel=0.01)


def test_watchdog_makes_the_driver_limp():
    plant, _ = walking_plant()
    plant.driver_frame(_mit.ENTER_FRAME, 0.0)
    plant.driver_frame(_mit.pack_command(RNG, 0.0, 0.0, 0.0, 0.0, 10.0), 0.0)
    plant.advance(0.04)
    assert not plant.watchdog_tripped
    plant.advance(0.06)
    assert plant.watchdog_tripped
    _, _, omega, tau = plant.state
    limp = DEFAULTS["limp_damping_Nms_rad"] * DEFAULTS["ratio"] ** 2 * DEFAULTS["efficiency"]
    assert abs(tau) <= limp * abs(omega) + 1e-6


def test_unpowered_ankle_under_load_dorsiflexes_beyond_the_reference():
    plant, w = walking_plant()
    angles = []
    for k in range(1, 600):           # 0.6 s of stance with no prosthesis torque
        plant.advance(k * 1e-3)
        angles.append(plant.state[1])
    from sim.reference import stride_profile
    reference_max = float(np.max(stride_profile(1.25)["ankle_angle_rad"]))
    assert max(angles) > reference_max + 0.05


def test_hard_stop_holds_the_end_of_range():
    plant = build_plant()            # not walking: the foot is free, only the actuator acts
    plant.driver_frame(_mit.ENTER_FRAME, 0.0)
    for k in range(1, 500):          # push into dorsiflexion with the full motor torque
        plant.driver_frame(_mit.pack_command(RNG, 0.0, 0.0, 0.0, 0.0, 18.0 * DEFAULTS["direction"]), k * 1e-3)
        plant.advance(k * 1e-3)
    angle, tau = plant.state[1], plant.state[3]
    stop = DEFAULTS["stop_dorsi_rad"]
    assert tau < -100.0
    assert angle == pytest.approx(stop - tau / DEFAULTS["stop_stiffness_Nm_rad"], abs=0.01)


def test_sensor_frames_carry_the_reference_and_the_encoder():
    from hal._sensor_frames import decode_imu, decode_load
    plant, w = walking_plant(load_noise_N=0.0, gyro_noise_rad_s=0.0, accel_noise_m_s2=0.0)
    plant.advance(0.2)
    buf = bytearray(8)
    n = plant.load_payload(buf)
    load = decode_load(bytes(buf[:n]))
    assert load["load_N"] > 0.5 * 80 * 9.80665        # mid-stance: about body weight
    assert load["ankle_angle_rad"] == pytest.approx(plant.state[1], abs=1e-4)
    n = plant.imu_payload(buf)
    assert abs(decode_imu(bytes(buf[:n]))["gyro_z_rad_s"]) < 10.0


def test_reply_reports_motor_side_state():
    plant, _ = walking_plant()
    plant.driver_frame(_mit.ENTER_FRAME, 0.0)
    plant.advance(0.1)
    buf = bytearray(8)
    assert plant.reply_payload(buf) == 8
    rep = _mit.unpack_reply(RNG, bytes(buf))
    assert rep["driver_id"] == DEFAULTS["driver_id"]
    assert rep["p_rad"] == pytest.approx(DEFAULTS["direction"] * DEFAULTS["ratio"] * plant.state[1], abs=1e-3)
    assert rep["temperature_C"] == 25


def standing_profile(ankle_rad=0.0, load_N=400.0, moment_Nm=0.0):
    """A constant standing profile (channels in PROFILE_CHANNELS order)."""
    from sim.plant import PROFILE_CHANNELS
    values = {"ankle_angle_rad": ankle_rad, "ankle_vel_rad_s": 0.0, "moment_Nm": moment_Nm,
              "load_N": load_N, "shank_angle_rad": -ankle_rad, "shank_omega_rad_s": 0.0}
    return np.ascontiguousarray(np.vstack([np.full(1001, values[c]) for c in PROFILE_CHANNELS]))


def test_walking_strides_and_standing_segments_have_their_own_limits():
    plant = build_plant()
    profile = standing_profile()
    with pytest.raises(ValueError, match="stride time"):
        plant.queue_stride(profile, 12.0, 0.6)                  # too long for a stride
    with pytest.raises(ValueError, match="stride time"):
        plant.queue_stride(profile, 1.0, 1.0)                   # stance fraction of a standing segment
    plant.queue_stride(profile, 12.0, 1.0, False)               # fine as standing
    with pytest.raises(ValueError, match="standing"):
        plant.queue_stride(profile, 40.0, 1.0, walking=False)


def test_standing_segment_loads_and_holds_the_ankle_with_no_phase():
    plant = build_plant({"initial_angle_rad": 0.2})
    plant.queue_stride(standing_profile(ankle_rad=0.03), 3.0, 1.0, walking=False)
    plant.start(0.0)
    plant.advance(0.5)                                          # unpowered: only the wearer holds it
    assert plant.state[1] == pytest.approx(0.03, abs=0.01)
    row = np.zeros(TRUTH_LENGTH)
    plant.truth(row)
    t, phase, stance, angle, torque, temp, stride, walking, case_temp = row
    assert (phase, stance, walking, stride) == (-1.0, 1.0, 0.0, 0.0)


def test_truth_marks_walking_strides():
    plant, _ = walking_plant()
    plant.advance(0.3)
    row = np.zeros(TRUTH_LENGTH)
    plant.truth(row)
    assert row[7] == 1.0 and 0.2 < row[1] < 0.35
    with pytest.raises(ValueError, match=f"{TRUTH_LENGTH} values"):
        plant.truth(np.zeros(TRUTH_LENGTH - 1))


def test_gyro_bias_and_load_offset_drift_linearly_with_time():
    from hal._sensor_frames import decode_imu, decode_load
    quiet = dict(load_noise_N=0.0, gyro_noise_rad_s=0.0, accel_noise_m_s2=0.0)
    plain, _ = walking_plant(**quiet)
    drifting, _ = walking_plant(gyro_bias_rad_s=0.01, gyro_bias_drift_rad_s2=0.002,
                                load_offset_N=3.0, load_offset_drift_N_s=1.5, **quiet)
    buf = bytearray(8)
    for t in (0.5, 2.0, 4.0):
        plain.advance(t)
        drifting.advance(t)
        gyro = [decode_imu(bytes(buf[:p.imu_payload(buf)]))["gyro_z_rad_s"] for p in (plain, drifting)]
        load = [decode_load(bytes(buf[:p.load_payload(buf)]))["load_N"] for p in (plain, drifting)]
        assert gyro[1] - gyro[0] == pytest.approx(0.01 + 0.002 * t, abs=0.0015)
        assert load[1] - load[0] == pytest.approx(3.0 + 1.5 * t, abs=0.75)


def test_drift_defaults_leave_the_sensors_unchanged():
    assert DEFAULTS["gyro_bias_drift_rad_s2"] == 0.0 and DEFAULTS["load_offset_drift_N_s"] == 0.0
