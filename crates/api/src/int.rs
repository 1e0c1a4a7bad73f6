//! Integers as JSON Schema counts them: `3` and `3.0` are the same integer. serde's integer
//! types refuse `3.0`; these deserializers take any number with no fractional part that fits.

use serde::de::{Deserializer, Error};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(untagged)]
enum Num {
    I(i64),
    U(u64),
    F(f64),
}

fn to<T: TryFrom<i64>, E: Error>(n: Num) -> Result<T, E> {
    let v: i64 = match n {
        Num::I(i) => i,
        Num::U(u) => i64::try_from(u).map_err(|_| E::custom(format!("{u} is too large")))?,
        Num::F(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => f as i64,
        Num::F(f) => return Err(E::custom(format!("{f} is not an integer"))),
    };
    T::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
}

pub fn one<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<T, D::Error> {
    to(Num::deserialize(d)?)
}

pub fn opt<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<Num>::deserialize(d)?.map(to).transpose()
}

pub fn vec<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<Vec<T>, D::Error> {
    Vec::<Num>::deserialize(d)?.into_iter().map(to).collect()
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug)]
    struct T {
        #[serde(deserialize_with = "super::one")]
        a: u32,
        #[serde(default, deserialize_with = "super::opt")]
        b: Option<i64>,
        #[serde(deserialize_with = "super::vec")]
        c: Vec<i64>,
    }

    #[test]
    fn whole_floats_are_integers_and_fractions_are_not() {
        let t: T = serde_json::from_str(r#"{"a": 3.0, "b": -2, "c": [1, 2.0]}"#).unwrap();
        assert_eq!((t.a, t.b, t.c), (3, Some(-2), vec![1, 2]));
        assert!(serde_json::from_str::<T>(r#"{"a": 3.5, "c": []}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a": -1, "c": []}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a": "3", "c": []}"#).is_err());
    }
}
