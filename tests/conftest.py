"""Shared helpers: full records for the kernels' dict wrappers."""
def inputs(**over):
    """An Inputs record with fresh, plausible values at t = 1.0 s (fields overridable)."""
    d = dict(shank_gyro_rad_s=0.0, accel_x_m_s2=0.0, accel_y_m_s2=9.8, load_N=700.0,
             ankle_angle_rad=0.0, supply_V=24.0, imu_rx_s=1.0, load_rx_s=1.0, node_status_rx_s=1.0,
             imu_seq=0, load_seq=0, node_flags=0, motor_angle_rad=0.0, motor_vel_rad_s=0.0,
             motor_torque_Nm=0.0, motor_temp_C=30.0, motor_error=0, motor_rx_s=1.0,
             send_failures=0, bus_error_ticks=0, imu_valid=1, load_valid=1)
    d.update(over)
    return d


def gait(**over):
    d = dict(phase=0.3, heel_strike=0, toe_off=0, stance=1, walking=1, stride_time_s=1.1,
             stance_time_s=0.68, cadence_steps_min=109.0, t_heel_strike_s=0.7, t_toe_off_s=0.4,
             confidence=1.0, standing=0, source=1, stride_estimate_s=1.1)
    d.update(over)
    return d


def command(**over):
    d = dict(torque_ff_Nm=0.0, p_des_rad=0.0, v_des_rad_s=0.0, kp_Nm_rad=0.0, kd_Nms_rad=0.0,
             torque_expected_Nm=0.0, pushoff_Nm=0.0)
    d.update(over)
    return d


def kill_when_ready(args, rng, max_delay_s, **popen):
    """Start ``args`` (a child that prints "ready" when it has begun its work), SIGKILL it after a
    random delay up to ``max_delay_s``, and wait for it; a real crash at a random moment."""
    import signal
    import subprocess
    import time
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    try:
        assert proc.stdout.readline() == b"ready\n", proc.stderr.read().decode()
        time.sleep(rng.uniform(0.0, max_delay_s))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
